//! The HTTPS client every AWS SDK client of the functions uses: the SDK's own hyper 1 client on
//! rustls 0.23 with the **ring** crypto provider, trusting Mozilla's root certificates compiled
//! into the binary.
//!
//! - **ring, not aws-lc.** The SDK's default (`default-https-client`) is rustls on aws-lc, whose
//!   CPU-jitter entropy source costs ~22 ms on the first random-number request of a process,
//!   i.e. on the first TLS handshake of a cold start, unless aws-lc-sys was built with
//!   `AWS_LC_SYS_NO_JITTER_ENTROPY=1`. A build setting in `.cargo/config.toml` only applies when
//!   cargo runs inside this repository; ring takes its seed from `getrandom(2)` whatever the
//!   build environment, and is smaller. The workspace turns off the SDK crates' default
//!   features so aws-lc (and the legacy rustls 0.21 stack) are not linked at all; a test checks
//!   the functions' dependency graph.
//! - **Compiled-in roots, not the system store.** Loading the system store reads every file of
//!   `/etc/ssl/certs` (146 on Debian, ~2.5 ms of each cold start here) when the first client is
//!   built. The compiled-in set ([`webpki_root_certs`], Mozilla's list, the one curl and Firefox
//!   use) costs no I/O. AWS endpoints chain to Amazon Trust Services roots, which are in it. The
//!   price: a root added or removed by Mozilla reaches the functions with the next release
//!   (`cargo update -p webpki-root-certs`), not with the OS image. An operator who needs a
//!   private CA sets `SSL_CERT_FILE` (or `SSL_CERT_DIR`): then the system loader reads exactly
//!   that, in addition to the compiled-in roots.

use aws_sdk_sqs::config::SharedHttpClient;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};

/// The crypto library of the functions' TLS (rustls' provider), for logs and tests.
pub const CRYPTO_PROVIDER: &str = "ring";

/// Environment variables that make the client also load roots through the system loader
/// (`rustls-native-certs` reads exactly the file or directory they name).
pub const NATIVE_ROOTS_VARIABLES: [&str; 2] = ["SSL_CERT_FILE", "SSL_CERT_DIR"];

/// The certificates the HTTPS client trusts.
#[derive(Debug, Clone)]
pub struct TrustRoots {
    compiled_in: bool,
    native: bool,
    extra_pem: Vec<Vec<u8>>,
}

impl TrustRoots {
    /// Mozilla's roots compiled into the binary, and nothing else.
    pub fn compiled_in() -> Self {
        TrustRoots {
            compiled_in: true,
            native: false,
            extra_pem: Vec::new(),
        }
    }

    /// No roots at all (add some with [`TrustRoots::with_pem`]).
    pub fn none() -> Self {
        TrustRoots {
            compiled_in: false,
            native: false,
            extra_pem: Vec::new(),
        }
    }

    /// What the functions use: the compiled-in roots, plus the system loader's when `lookup`
    /// gives a non-blank `SSL_CERT_FILE` or `SSL_CERT_DIR`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let native = NATIVE_ROOTS_VARIABLES
            .iter()
            .any(|v| lookup(v).is_some_and(|value| !value.trim().is_empty()));
        TrustRoots {
            native,
            ..TrustRoots::compiled_in()
        }
    }

    /// Also trusts the certificates of a PEM bundle (a private CA; tests: a self-signed one).
    pub fn with_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_pem.push(pem.into());
        self
    }

    /// Whether the system loader is used too.
    pub fn uses_native_roots(&self) -> bool {
        self.native
    }

    fn trust_store(&self) -> TrustStore {
        let mut store = TrustStore::empty().with_native_roots(self.native);
        if self.compiled_in {
            // The SDK's trust store takes PEM; the certificates are parsed when the client's
            // connector is built (once per process), with no file I/O.
            store.add_pem_certificate(pem_bundle(
                webpki_root_certs::TLS_SERVER_ROOT_CERTS
                    .iter()
                    .map(|c| c.as_ref()),
            ));
        }
        for pem in &self.extra_pem {
            store.add_pem_certificate(pem.clone());
        }
        store
    }
}

/// The SDK HTTPS client (hyper 1, rustls on ring) trusting `roots`. Share one per process: the
/// SDK clients built from one `SdkConfig` share its connection pool.
pub fn https_client(roots: &TrustRoots) -> SharedHttpClient {
    let context = TlsContext::builder()
        .with_trust_store(roots.trust_store())
        .build();
    let builder = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
    match context {
        Ok(context) => builder.tls_context(context).build_https(),
        // `build` has no failing case for rustls today; keep the provider's defaults if it has.
        Err(e) => {
            tracing::warn!(error = %e, "TLS context rejected; using the SDK's default trust store");
            builder.build_https()
        }
    }
}

/// DER certificates as one PEM bundle.
fn pem_bundle<'a>(ders: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 * 1024);
    for der in ders {
        out.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        let encoded = base64(der);
        for line in encoded.chunks(64) {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        out.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    out
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(data: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = vec![b'='; data.len().div_ceil(3) * 4];
    for (chunk, quad) in data.chunks(3).zip(out.chunks_exact_mut(4)) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [n >> 18, n >> 12, n >> 6, n];
        // `chunk.len() + 1` characters carry data; the rest stay '='.
        for (c, s) in quad.iter_mut().zip(sextets).take(chunk.len() + 1) {
            *c = ALPHABET[(s & 63) as usize];
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded.as_bytes(), "{plain:?}");
        }
    }

    #[test]
    fn native_roots_only_when_an_ssl_cert_variable_is_set() {
        assert!(!TrustRoots::from_lookup(|_| None).uses_native_roots());
        assert!(!TrustRoots::from_lookup(|_| Some(" ".into())).uses_native_roots());
        for var in NATIVE_ROOTS_VARIABLES {
            let roots = TrustRoots::from_lookup(|k| (k == var).then(|| "/etc/x.pem".into()));
            assert!(roots.uses_native_roots(), "{var}");
        }
    }

    #[test]
    fn the_compiled_in_bundle_is_every_mozilla_root_in_pem() {
        let bundle = pem_bundle(
            webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .map(|c| c.as_ref()),
        );
        let text = String::from_utf8(bundle).unwrap();
        let n = text.matches("-----BEGIN CERTIFICATE-----").count();
        assert_eq!(n, webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        assert!(n > 100, "{n} roots");
        assert!(
            text.lines()
                .all(|l| l.len() <= 64 || l.starts_with("-----"))
        );
    }
}

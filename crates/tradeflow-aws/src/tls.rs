//! The HTTPS client every AWS SDK client of the functions uses: the SDK's own hyper 1 client on
//! rustls 0.23 with the **ring** crypto provider, trusting the roots of Amazon Trust Services,
//! compiled into the binary.
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
//!   built. The roots here come from [`webpki_root_certs`] (Mozilla's list) with no I/O.
//! - **Only Amazon Trust Services' roots by default.** The functions talk to AWS endpoints
//!   only, and every AWS endpoint certificate chains to Amazon Root CA 1–4 or the Starfield
//!   Services Root G2 that cross-signs them. Turning all ~150 Mozilla roots into the SDK's
//!   trust store (it takes PEM, parsed when the first client is built) was the largest init
//!   cost left (BENCHMARKS.md); five cost almost nothing. [`TrustRoots::mozilla`] keeps the whole list for
//!   other callers.
//! - **The price.** A root change reaches the functions with a release
//!   (`cargo update -p webpki-root-certs`), not with the OS image; an endpoint with another CA
//!   (a private one, an HTTPS emulator) needs `SSL_CERT_FILE` (or `SSL_CERT_DIR`): then the
//!   system loader reads exactly that file or directory too, e.g.
//!   `SSL_CERT_FILE=/etc/pki/tls/certs/ca-bundle.crt` on `provided.al2023`.

use aws_sdk_sqs::config::SharedHttpClient;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};

/// The crypto library of the functions' TLS (rustls' provider), for logs and tests.
pub const CRYPTO_PROVIDER: &str = "ring";

/// Environment variables that make the client also load roots through the system loader
/// (`rustls-native-certs` reads exactly the file or directory they name).
pub const NATIVE_ROOTS_VARIABLES: [&str; 2] = ["SSL_CERT_FILE", "SSL_CERT_DIR"];

/// The common names of Amazon Trust Services' roots: every AWS endpoint chains to one of them.
pub const AWS_ROOT_NAMES: [&str; 5] = [
    "Amazon Root CA 1",
    "Amazon Root CA 2",
    "Amazon Root CA 3",
    "Amazon Root CA 4",
    "Starfield Services Root Certificate Authority - G2",
];

/// Which of the compiled-in roots to trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CompiledIn {
    None,
    Aws,
    Mozilla,
}

/// The certificates the HTTPS client trusts.
#[derive(Debug, Clone)]
pub struct TrustRoots {
    compiled_in: CompiledIn,
    native: bool,
    extra_pem: Vec<Vec<u8>>,
}

impl TrustRoots {
    /// Amazon Trust Services' roots ([`AWS_ROOT_NAMES`]), compiled in, and nothing else.
    pub fn aws() -> Self {
        TrustRoots {
            compiled_in: CompiledIn::Aws,
            native: false,
            extra_pem: Vec::new(),
        }
    }

    /// All of Mozilla's roots, compiled in.
    pub fn mozilla() -> Self {
        TrustRoots {
            compiled_in: CompiledIn::Mozilla,
            ..TrustRoots::aws()
        }
    }

    /// No roots at all (add some with [`TrustRoots::with_pem`]).
    pub fn none() -> Self {
        TrustRoots {
            compiled_in: CompiledIn::None,
            ..TrustRoots::aws()
        }
    }

    /// What the functions use: Amazon Trust Services' roots, plus the system loader's when
    /// `lookup` gives a non-blank `SSL_CERT_FILE` or `SSL_CERT_DIR`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let native = NATIVE_ROOTS_VARIABLES
            .iter()
            .any(|v| lookup(v).is_some_and(|value| !value.trim().is_empty()));
        TrustRoots {
            native,
            ..TrustRoots::aws()
        }
    }

    /// The compiled-in certificates trusted (DER).
    pub fn compiled_in_certificates(&self) -> Vec<&'static [u8]> {
        let all = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|c| c.as_ref());
        match self.compiled_in {
            CompiledIn::None => Vec::new(),
            CompiledIn::Mozilla => all.collect(),
            CompiledIn::Aws => {
                let is_aws_root = aws_root_filter();
                all.filter(|der| is_aws_root(der)).collect()
            }
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

    pub(crate) fn trust_store(&self) -> TrustStore {
        let mut store = TrustStore::empty().with_native_roots(self.native);
        let compiled_in = self.compiled_in_certificates();
        if !compiled_in.is_empty() {
            // The SDK's trust store takes PEM; the certificates are parsed when the client's
            // connector is built (once per process), with no file I/O.
            store.add_pem_certificate(pem_bundle(compiled_in.into_iter()));
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

/// Whether a root certificate (DER) is one of [`AWS_ROOT_NAMES`]: a self-signed root names
/// itself as subject and issuer, so its common name appears in its encoding, as a whole string
/// value: its DER length byte, then the name (so "…CA 1" does not match "…CA 10"). The names
/// are searched with `memchr`'s SIMD substring search, built once per call: a byte-by-byte scan
/// of the ~150 Mozilla roots took ~1.3 ms of every cold start (a third of the dispatcher's init
/// samples under `perf`; BENCHMARKS.md "Cold start and footprint", step 7).
fn aws_root_filter() -> impl Fn(&[u8]) -> bool {
    let finders: Vec<memchr::memmem::Finder<'static>> = AWS_ROOT_NAMES
        .iter()
        .filter_map(|name| {
            // Short-form DER length: every name is under 128 bytes.
            let len = u8::try_from(name.len()).ok().filter(|l| *l < 0x80)?;
            let mut pattern = Vec::with_capacity(name.len() + 1);
            pattern.push(len);
            pattern.extend_from_slice(name.as_bytes());
            Some(memchr::memmem::Finder::new(&pattern).into_owned())
        })
        .collect();
    move |der: &[u8]| finders.iter().any(|f| f.find(der).is_some())
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
    fn a_root_matches_only_a_whole_length_prefixed_name() {
        let is_aws_root = aws_root_filter();
        assert!(is_aws_root(b"\x30\x0c\x13\x10Amazon Root CA 1\x31"));
        // A longer name with the same start, and the name without its length byte.
        assert!(!is_aws_root(b"\x13\x11Amazon Root CA 10"));
        assert!(!is_aws_root(b"\x13\x20Amazon Root CA 1"));
        assert!(!is_aws_root(b""));
        assert!(is_aws_root(
            b"\x0c\x32Starfield Services Root Certificate Authority - G2"
        ));
        assert!(!is_aws_root(
            b"\x0c\x29Starfield Root Certificate Authority - G2"
        ));
    }

    #[test]
    fn the_default_roots_are_the_five_amazon_trust_services_roots() {
        let aws = TrustRoots::aws().compiled_in_certificates();
        assert_eq!(aws.len(), AWS_ROOT_NAMES.len());
        for name in AWS_ROOT_NAMES {
            let hits = aws
                .iter()
                .filter(|der| der.windows(name.len()).any(|w| w == name.as_bytes()))
                .count();
            assert!(hits >= 1, "{name}");
        }
        // "Starfield Root Certificate Authority - G2" (not a Services root) is left out.
        assert!(
            !aws.iter()
                .any(|der| der.windows(15).any(|w| w == b"Starfield Root "))
        );
        assert_eq!(
            TrustRoots::from_lookup(|_| None).compiled_in_certificates(),
            aws
        );
        assert!(TrustRoots::mozilla().compiled_in_certificates().len() > 100);
        assert!(TrustRoots::none().compiled_in_certificates().is_empty());
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

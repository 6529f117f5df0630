//! The functions' TLS: one stack (rustls 0.23) on one crypto library (ring), and a first
//! handshake that completes on ring whatever environment cargo built this in.
//!
//! aws-lc's CPU-jitter entropy costs ~22 ms on the first random-number request of a process
//! unless aws-lc-sys was built with `AWS_LC_SYS_NO_JITTER_ENTROPY=1` (a setting that only
//! `.cargo/config.toml` inside this repository applies). The functions do not link aws-lc at all:
//! the first test checks the dependency graph cargo resolves for them, the second makes the
//! process's first handshake through the SDK client the functions use and checks, from the
//! server's side, that it came from ring. Its duration is printed, not asserted: timings live in
//! BENCHMARKS.md (`cargo xtask bench-init`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use tradeflow_aws::tls::{self, TrustRoots};

/// `cargo tree` of the three functions, resolved as their release builds are (only their own
/// features unified): one line per crate, `name vX.Y.Z`.
fn function_dependencies() -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(cargo)
        .current_dir(&root)
        .args([
            "tree",
            "--locked",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "-p",
            "signal-generator",
            "-p",
            "trigger-dispatcher",
            "-p",
            "pipeline-executor",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            // "rustls v0.23.46" or "tradeflow-aws v0.1.0 (/path)" or "x v1 (*)"
            let mut words = l.split_whitespace();
            Some(format!("{} {}", words.next()?, words.next()?))
        })
        .collect()
}

#[test]
fn the_functions_link_one_tls_stack_on_one_crypto_library() {
    let deps = function_dependencies();
    let named = |name: &str| -> Vec<&String> {
        deps.iter()
            .filter(|d| d.split(' ').next() == Some(name))
            .collect()
    };
    assert!(named("tradeflow-aws").len() == 1, "not the functions' tree");
    assert_eq!(
        named("rustls").len(),
        1,
        "one rustls: {:?}",
        named("rustls")
    );
    assert!(named("rustls")[0].starts_with("rustls v0.23."));
    assert_eq!(named("ring").len(), 1);
    assert!(
        named("hyper-rustls").len() == 1,
        "{:?}",
        named("hyper-rustls")
    );
    for absent in [
        "aws-lc-rs",
        "aws-lc-sys",
        "aws-lc-fips-sys",
        "openssl",
        "openssl-sys",
        "native-tls",
        "s2n-tls",
    ] {
        assert!(named(absent).is_empty(), "{absent} is linked: {deps:?}");
    }
    // The legacy stack of the SDK crates' default `rustls` feature.
    assert!(named("hyper").iter().all(|h| h.starts_with("hyper v1.")));
}

/// What the server saw of the handshake.
#[derive(Debug)]
struct Seen {
    offered_groups: Vec<rustls::NamedGroup>,
    version: Option<rustls::ProtocolVersion>,
    request_line: String,
}

/// A one-connection HTTPS server on 127.0.0.1 (rustls on ring, certificate for `localhost`)
/// answering an SQS GetQueueUrl with `queue_url`.
fn serve_once(
    listener: TcpListener,
    cert: rcgen::CertifiedKey<rcgen::KeyPair>,
    queue_url: &'static str,
) -> std::thread::JoinHandle<Result<Seen, Box<dyn std::error::Error + Send + Sync>>> {
    let chain = vec![cert.cert.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap(),
    );
    std::thread::spawn(
        move || -> Result<Seen, Box<dyn std::error::Error + Send + Sync>> {
            let (mut tcp, _) = listener.accept()?;
            let mut acceptor = rustls::server::Acceptor::default();
            let accepted = loop {
                acceptor.read_tls(&mut tcp)?;
                if let Some(accepted) = acceptor.accept().map_err(|(e, _)| e)? {
                    break accepted;
                }
            };
            let offered_groups = accepted
                .client_hello()
                .named_groups()
                .unwrap_or_default()
                .to_vec();
            let conn = accepted.into_connection(config).map_err(|(e, _)| e)?;
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut reader = BufReader::new(&mut tls);
            let mut request_line = String::new();
            reader.read_line(&mut request_line)?;
            let mut content_length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line)?;
                if line.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    content_length = v.trim().parse()?;
                }
            }
            let mut body = vec![0; content_length];
            reader.read_exact(&mut body)?;
            let version = tls.conn.protocol_version();
            let answer = format!(r#"{{"QueueUrl":"{queue_url}"}}"#);
            write!(
                tls,
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            )?;
            tls.flush()?;
            tls.conn.send_close_notify();
            let _ = tls.flush();
            Ok(Seen {
                offered_groups,
                version,
                request_line: request_line.trim().to_owned(),
            })
        },
    )
}

#[tokio::test(flavor = "current_thread")]
async fn the_first_handshake_of_the_process_completes_on_ring() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let ca_pem = cert.cert.pem();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    const URL: &str = "https://localhost/000000000000/tls-test";
    let server = serve_once(listener, cert, URL);

    // The functions' HTTPS client, trusting the local CA (and nothing else, so a pass proves
    // the certificate was verified against it).
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(format!("https://localhost:{port}"))
        .http_client(tls::https_client(&TrustRoots::none().with_pem(ca_pem)))
        .build();
    let sqs = aws_sdk_sqs::Client::from_conf(config);
    let started = Instant::now();
    let output = sqs.get_queue_url().queue_name("tls-test").send().await;
    let elapsed = started.elapsed();
    let seen = server.join().unwrap().unwrap();
    let output = output.unwrap();
    println!(
        "first HTTPS call of the process (connect, handshake on {}, request): {:.2} ms",
        tls::CRYPTO_PROVIDER,
        elapsed.as_secs_f64() * 1000.0
    );

    assert_eq!(output.queue_url(), Some(URL));
    assert_eq!(seen.request_line, "POST / HTTP/1.1");
    assert_eq!(seen.version, Some(rustls::ProtocolVersion::TLSv1_3));
    // The key-exchange groups the client offered are exactly ring's: aws-lc's provider offers
    // X25519MLKEM768 first (and has no place in these binaries).
    let ring: Vec<rustls::NamedGroup> = rustls::crypto::ring::default_provider()
        .kx_groups
        .iter()
        .map(|g| g.name())
        .collect();
    assert_eq!(seen.offered_groups, ring);
    assert!(
        !seen
            .offered_groups
            .contains(&rustls::NamedGroup::X25519MLKEM768)
    );
    assert_eq!(tls::CRYPTO_PROVIDER, "ring");

    // Same client with the functions' default roots only: the local CA is not trusted.
    refuses_an_unknown_issuer().await;
}

/// One test with the handshake above, so that one is the process's first.
async fn refuses_an_unknown_issuer() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The server's side fails when the client aborts the handshake (UnknownCA alert).
    let server = serve_once(listener, cert, "https://unused");
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(format!("https://localhost:{port}"))
        .http_client(tls::https_client(&TrustRoots::from_lookup(|_| None)))
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
        .build();
    let sqs = aws_sdk_sqs::Client::from_conf(config);
    let result = sqs.get_queue_url().queue_name("q").send().await;
    let err = result.unwrap_err();
    let chain = format!("{:?}", err);
    assert!(
        chain.contains("UnknownIssuer") || chain.contains("invalid peer certificate"),
        "{chain}"
    );
    let server_side = server.join().unwrap().unwrap_err().to_string();
    assert!(server_side.contains("UnknownCA"), "{server_side}");
}

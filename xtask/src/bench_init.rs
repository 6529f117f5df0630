//! `cargo xtask bench-init`: cold start and footprint of the three functions beside the floor
//! (a minimal `lambda_runtime` binary), in one run, on this machine.
//!
//! - Builds the functions (`cargo build --release -p signal-generator -p trigger-dispatcher
//!   -p pipeline-executor`, their own features only, as `local/build-zips.sh` does) and the
//!   floor (`-p init-probe --bin init-floor`) unless `--no-build`.
//! - Init: process start → first `GET /2018-06-01/runtime/invocation/next` on a local Runtime
//!   API (`init-probe`), `--runs` times per binary round-robin after one warm-up start; then
//!   `--cold-runs` times with the binary evicted from the page cache first (`dd iflag=nocache
//!   count=0`, i.e. posix_fadvise DONTNEED on the file; `--drop-caches` drops the whole page
//!   cache instead, libraries included, which needs root and slows everything else running).
//! - Peak RSS: `VmHWM` at the first `next`.
//! - First HTTPS call: signal-generator gets a scheduled event with `AWS_ENDPOINT_URL` on a local
//!   TLS server (rustls on ring, a fresh self-signed CA passed through `SSL_CERT_FILE`); the
//!   time from the event to the ClientHello (the client's key share is its first use of the
//!   random-number generator: an entropy stall lands here) and to the first request.
//! - Prints the Markdown table; `--write` also puts it into BENCHMARKS.md between the
//!   `bench-init` markers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use init_probe::{FLOOR, FUNCTIONS, RuntimeApi, Sample, median};

pub const USAGE: &str = "cargo xtask bench-init [--runs N] [--cold-runs N] [--tls-runs N] \
                         [--no-build] [--drop-caches] [--write] [--compare DIR]";

const BEGIN: &str = "<!-- bench-init:begin -->";
const END: &str = "<!-- bench-init:end -->";

/// Targets per function (issue 9).
const TARGET_WARM_MS: f64 = 4.0;
const TARGET_COLD_MS: f64 = 10.0;
const TARGET_RSS_MIB: f64 = 10.0;

struct Options {
    runs: usize,
    cold_runs: usize,
    tls_runs: usize,
    build: bool,
    drop_caches: bool,
    write: bool,
    /// Directories with other builds of the three functions (e.g. an older commit's
    /// `target/release`), measured interleaved with ours in the same run (repeatable).
    compare: Vec<PathBuf>,
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options {
        runs: 30,
        cold_runs: 10,
        tls_runs: 5,
        build: true,
        drop_caches: false,
        write: false,
        compare: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut count = |name: &str| -> anyhow::Result<usize> {
            it.next()
                .with_context(|| format!("{name} needs a number"))?
                .parse()
                .with_context(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--runs" => o.runs = count("--runs")?.max(1),
            "--cold-runs" => o.cold_runs = count("--cold-runs")?,
            "--tls-runs" => o.tls_runs = count("--tls-runs")?,
            "--no-build" => o.build = false,
            "--drop-caches" => o.drop_caches = true,
            "--write" => o.write = true,
            "--compare" => {
                o.compare.push(PathBuf::from(
                    it.next().context("--compare needs a directory")?,
                ));
            }
            other => bail!("unknown argument {other:?}\nusage: {USAGE}"),
        }
    }
    Ok(o)
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn run(command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn target_dir(root: &Path) -> anyhow::Result<PathBuf> {
    let meta = run(Command::new(cargo()).current_dir(root).args([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
    ]))?;
    let v: serde_json::Value = serde_json::from_str(&meta)?;
    Ok(PathBuf::from(
        v["target_directory"]
            .as_str()
            .context("no target_directory in cargo metadata")?,
    ))
}

fn build(root: &Path) -> anyhow::Result<()> {
    let mut functions = Command::new(cargo());
    functions.current_dir(root).args(["build", "--release"]);
    for f in FUNCTIONS {
        functions.args(["-p", f]);
    }
    eprintln!("bench-init: {functions:?}");
    let status = functions.status()?;
    if !status.success() {
        bail!("building the functions failed");
    }
    let status = Command::new(cargo())
        .current_dir(root)
        .args(["build", "--release", "-p", "init-probe", "--bin", FLOOR])
        .status()?;
    if !status.success() {
        bail!("building {FLOOR} failed");
    }
    Ok(())
}

/// Evicts `binary` from the page cache (or the whole cache with `all`).
fn evict(binary: &Path, all: bool) -> anyhow::Result<()> {
    if all {
        run(&mut Command::new("sync"))?;
        std::fs::write("/proc/sys/vm/drop_caches", "3\n")
            .context("writing /proc/sys/vm/drop_caches (root only)")?;
    } else {
        run(Command::new("dd")
            .arg(format!("if={}", binary.display()))
            .args(["iflag=nocache", "count=0", "status=none"]))?;
    }
    Ok(())
}

#[derive(Default)]
struct Row {
    warm: Vec<f64>,
    cold: Vec<f64>,
    rss_mib: Vec<f64>,
    size: u64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Event → ClientHello and event → first request of signal-generator's first HTTPS call.
struct TlsRun {
    client_hello_ms: f64,
    request_ms: f64,
}

fn first_https_call(
    api: &RuntimeApi,
    binary: &Path,
    ca_file: &Path,
    cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
) -> anyhow::Result<TlsRun> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)?,
    );
    let (tx, rx) = mpsc::channel::<(Instant, Instant)>();
    std::thread::spawn(move || -> anyhow::Result<()> {
        let (tcp, _) = listener.accept()?;
        let mut first = [0u8; 1];
        tcp.peek(&mut first)?;
        let hello = Instant::now();
        let conn = rustls::ServerConnection::new(config)?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut line = String::new();
        BufReader::new(&mut tls).read_line(&mut line)?;
        let request = Instant::now();
        let _ = tx.send((hello, request));
        // Enough for the client to stop here; the process is killed next.
        let _ = tls.write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n");
        let mut rest = Vec::new();
        let _ = tls.read_to_end(&mut rest);
        Ok(())
    });
    let env = vec![
        (
            "AWS_ENDPOINT_URL".to_owned(),
            format!("https://localhost:{port}"),
        ),
        ("SSL_CERT_FILE".to_owned(), ca_file.display().to_string()),
        // One ticker and timeframe: the first call comes soon after the event.
        ("GENERATOR_TICKERS".to_owned(), "AAPL".to_owned()),
        ("GENERATOR_TIMEFRAMES".to_owned(), "5".to_owned()),
    ];
    let mut started = api
        .launch(binary, "signal-generator", &env, Duration::from_secs(30))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sent = started.invoke(
        r#"{"version":"0","id":"bench","detail-type":"Scheduled Event","source":"aws.events","account":"000000000000","time":"2026-12-01T00:00:00Z","region":"us-east-1","resources":[],"detail":{}}"#,
    )?;
    let got = rx.recv_timeout(Duration::from_secs(10));
    let output = started.kill();
    let (hello, request) = got.map_err(|_| {
        anyhow::anyhow!("no HTTPS request from signal-generator within 10 s; its output:\n{output}")
    })?;
    Ok(TlsRun {
        client_hello_ms: ms(hello.saturating_duration_since(sent)),
        request_ms: ms(request.saturating_duration_since(sent)),
    })
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let rustc = run(Command::new("rustc").arg("-V")).unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, Linux {kernel}, {rustc}; load average at the start {load} \
         (shared machine)"
    )
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.2} ms"))
}

fn verdict(value: Option<f64>, target: f64, unit: &str) -> String {
    match value {
        None => "not measured".into(),
        Some(v) if v <= target => "met".into(),
        Some(v) => format!("missed by {:.2} {unit}", v - target),
    }
}

pub fn main(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let o = parse(args)?;
    if o.build {
        build(root)?;
    }
    let release = target_dir(root)?.join("release");
    let mut names: Vec<&str> = std::iter::once(FLOOR).chain(FUNCTIONS).collect();
    let mut binaries: Vec<PathBuf> = names.iter().map(|n| release.join(n)).collect();
    let mut labels: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    for dir in &o.compare {
        for f in FUNCTIONS {
            names.push(f);
            binaries.push(dir.join(f));
            labels.push(format!("{f} ({})", dir.display()));
        }
    }
    for b in &binaries {
        if !b.exists() {
            bail!("{} is missing: run without --no-build", b.display());
        }
    }
    let machine = machine();
    let date = run(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))?;
    let api = RuntimeApi::start()?;
    let timeout = Duration::from_secs(30);
    let measure = |i: usize| -> anyhow::Result<Sample> {
        api.measure(&binaries[i], names[i], timeout)
            .map_err(|e| anyhow::anyhow!("{}: {e}", names[i]))
    };
    let mut rows: Vec<Row> = binaries
        .iter()
        .map(|b| Row {
            size: std::fs::metadata(b).map_or(0, |m| m.len()),
            ..Row::default()
        })
        .collect();

    eprintln!("bench-init: warm-up, then {} warm runs each", o.runs);
    for i in 0..names.len() {
        measure(i)?;
    }
    for _ in 0..o.runs {
        for (i, row) in rows.iter_mut().enumerate() {
            let s = measure(i)?;
            row.warm.push(ms(s.init));
            row.rss_mib.push(s.peak_rss_kib as f64 / 1024.0);
        }
    }
    let mut cold_note = "binary evicted with `dd iflag=nocache count=0` (posix_fadvise \
                         DONTNEED) before each start; shared libraries stay cached"
        .to_owned();
    if o.drop_caches {
        cold_note =
            "`echo 3 > /proc/sys/vm/drop_caches` before each start (whole page cache)".into();
    }
    if o.cold_runs > 0 {
        eprintln!("bench-init: {} cold runs each", o.cold_runs);
        let mut failed = None;
        'cold: for _ in 0..o.cold_runs {
            for (i, row) in rows.iter_mut().enumerate() {
                if let Err(e) = evict(&binaries[i], o.drop_caches) {
                    failed = Some(e);
                    break 'cold;
                }
                row.cold.push(ms(measure(i)?.init));
            }
        }
        if let Some(e) = failed {
            cold_note = format!("not measured ({e:#})");
            rows.iter_mut().for_each(|r| r.cold.clear());
        }
    }

    let mut tls_runs = Vec::new();
    if o.tls_runs > 0 {
        eprintln!("bench-init: {} first-HTTPS-call runs", o.tls_runs);
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
        let ca_file =
            std::env::temp_dir().join(format!("bench-init-ca-{}.pem", std::process::id()));
        std::fs::write(&ca_file, cert.cert.pem())?;
        let generator = release.join("signal-generator");
        for _ in 0..o.tls_runs {
            tls_runs.push(first_https_call(&api, &generator, &ca_file, &cert)?);
        }
        let _ = std::fs::remove_file(&ca_file);
    }

    let table = render(&o, &labels, &rows, &tls_runs, &machine, &date, &cold_note);
    println!("{table}");
    if o.write {
        let path = root.join("BENCHMARKS.md");
        let text = std::fs::read_to_string(&path)?;
        let (Some(a), Some(b)) = (text.find(BEGIN), text.find(END)) else {
            bail!("{} has no {BEGIN} … {END} section", path.display());
        };
        let updated = format!("{}{BEGIN}\n{table}\n{}", &text[..a], &text[b..]);
        std::fs::write(&path, updated)?;
        eprintln!("bench-init: table written to {}", path.display());
    }
    Ok(())
}

fn render(
    o: &Options,
    names: &[String],
    rows: &[Row],
    tls: &[TlsRun],
    machine: &str,
    date: &str,
    cold_note: &str,
) -> String {
    let mut t = String::new();
    let mut command = String::from("cargo xtask bench-init");
    command.push_str(&format!(
        " --runs {} --cold-runs {} --tls-runs {}",
        o.runs, o.cold_runs, o.tls_runs
    ));
    if o.drop_caches {
        command.push_str(" --drop-caches");
    }
    for dir in &o.compare {
        command.push_str(&format!(" --compare {}", dir.display()));
    }
    t.push_str(&format!(
        "- Command: `{command}` (release builds, `[profile.release]` of the root Cargo.toml, x86_64).\n\
         - Machine: {machine}.\n- Date: {date}.\n\
         - Init: process start → first `GET {}` on the local Runtime API; warm = page cache \
         warm, median (min–max) of {} runs after a warm-up; cold cache: {cold_note}, median of \
         {} runs. Peak RSS: `VmHWM` at the first `next` (median). Size: the stripped binary.\n\n",
        init_probe::NEXT_PATH,
        o.runs,
        o.cold_runs
    ));
    t.push_str("| binary | init, warm | min–max | init, cold cache | peak RSS | binary size |\n");
    t.push_str("|---|---:|---:|---:|---:|---:|\n");
    for (name, row) in names.iter().zip(rows) {
        let label = if name == FLOOR {
            "minimal `lambda_runtime` (floor)".to_owned()
        } else {
            name.clone()
        };
        let min = row.warm.iter().copied().fold(f64::INFINITY, f64::min);
        let max = row.warm.iter().copied().fold(0.0, f64::max);
        t.push_str(&format!(
            "| {label} | {} | {min:.2}–{max:.2} ms | {} | {:.1} MiB | {:.1} MB |\n",
            fmt_ms(median(&row.warm)),
            fmt_ms(median(&row.cold)),
            median(&row.rss_mib).unwrap_or(0.0),
            row.size as f64 / 1e6
        ));
    }
    t.push_str(&format!(
        "| **target per function** | ≤ {TARGET_WARM_MS} ms | | ≤ {TARGET_COLD_MS} ms | ≤ {TARGET_RSS_MIB} MiB | |\n\n"
    ));
    for (name, row) in names.iter().zip(rows).filter(|(n, _)| *n != FLOOR) {
        t.push_str(&format!(
            "- {name}: warm init {}, cold-cache init {}, peak RSS {}.\n",
            verdict(median(&row.warm), TARGET_WARM_MS, "ms"),
            verdict(median(&row.cold), TARGET_COLD_MS, "ms"),
            verdict(median(&row.rss_mib), TARGET_RSS_MIB, "MiB"),
        ));
    }
    if !tls.is_empty() {
        let hello: Vec<f64> = tls.iter().map(|r| r.client_hello_ms).collect();
        let request: Vec<f64> = tls.iter().map(|r| r.request_ms).collect();
        t.push_str(&format!(
            "\nFirst HTTPS call of a process (signal-generator, {} runs, median): scheduled \
             event delivered → its first ClientHello at a local TLS server **{}**, → the first \
             request read by the server {} (the server is rustls on ring in the xtask's debug \
             build, so the handshake half of that is the server's). The client's key share is \
             its first random-number request: a ~22 ms entropy stall would show in the \
             ClientHello figure.\n",
            tls.len(),
            fmt_ms(median(&hello)),
            fmt_ms(median(&request)),
        ));
    }
    t
}

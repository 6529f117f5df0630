//! `cargo xtask check-observability [--live PROMETHEUS_URL] [--allowlist FILE] [--verbose]`:
//! the checks of the dashboards and rules of infra/observability (docs/observability.md, "Checking").
//!
//! Static:
//!  1. every dashboard in infra/observability/grafana/dashboards/*.json parses, is a bare
//!     dashboard (not an import wrapper), has a valid unique uid, a title, a schemaVersion,
//!     unique panel ids, a gridPos on every panel, targets on the `prometheus` datasource with an
//!     expr;
//!  2. every panel expression and rule expression parses (promql-parser, after Grafana's
//!     variables are replaced) and names only metrics the functions export
//!     (`tradeflow_telemetry::METRICS`, histograms as `_bucket`/`_sum`/`_count`) or recording
//!     rules of ours; every panel expression also parses for `promtool check rules` (written as
//!     recording rules to a temporary file), Prometheus' own parser;
//!  3. `promtool check rules` of the rule files, `promtool test rules` of each
//!     infra/observability/tests/*.test.yml, `docker-compose -f local/compose.yaml config -q`,
//!     `promtool check config --syntax-only infra/observability/prometheus.yml`, and the collector
//!     and Grafana provisioning files parse as YAML.
//!
//! Live (`--live URL`):
//!  - every panel expression and every recording rule returns data (non-empty, not only NaN);
//!  - every alert: each value its thresholds compare (`X > 0.1` → `X`, both sides of
//!    `and`/`or`/`unless`, `absent*()` left out) returns data, and each series selector, over the
//!    range it is used with (`count_over_time(sel[range])`), returns data;
//!  - Prometheus has loaded every rule of our files and none is in error.
//!
//! Items that cannot have data yet are in the allowlist (infra/observability/live-allowlist.txt)
//! with a reason; an allowlisted item that has data is a note, an entry matching nothing fails.
//! Exit 0 when everything passes, 1 when something fails, 2 on bad usage. The last line is
//! `check-observability: N passed, N failed`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use promql_parser::parser::Expr;
use serde::Deserialize;
use serde_json::Value;
use tradeflow_telemetry::{METRICS, MetricKind};

use crate::promql::{self, selectors, value_exprs};

mod dashboards;
mod live;

const DATASOURCE_UIDS: &[&str] = &[
    "prometheus",
    "${datasource}",
    "$datasource",
    "${DS_PROMETHEUS}",
];

pub struct Options {
    pub live: Option<String>,
    pub allowlist: Option<PathBuf>,
    pub verbose: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut o = Options {
            live: None,
            allowlist: None,
            verbose: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--live" => o.live = Some(it.next().context("--live needs a URL")?.clone()),
                "--allowlist" => {
                    o.allowlist = Some(it.next().context("--allowlist needs a file")?.into());
                }
                "--verbose" | "-v" => o.verbose = true,
                other => {
                    if let Some(url) = other.strip_prefix("--live=") {
                        o.live = Some(url.to_owned());
                    } else if let Some(f) = other.strip_prefix("--allowlist=") {
                        o.allowlist = Some(f.into());
                    } else {
                        bail!("unknown argument {other}");
                    }
                }
            }
        }
        Ok(o)
    }
}

/// Counts and prints results in the checker's format (`ok`, `FAIL`, `note`, `allow`).
struct Report {
    passed: usize,
    failed: usize,
    verbose: bool,
}

impl Report {
    fn ok(&mut self, msg: impl AsRef<str>) {
        self.passed += 1;
        if self.verbose {
            println!("ok    {}", msg.as_ref());
        }
    }
    fn fail(&mut self, msg: impl AsRef<str>) {
        self.failed += 1;
        println!("FAIL  {}", msg.as_ref());
    }
    fn check(&mut self, good: bool, msg: impl AsRef<str>) {
        if good { self.ok(msg) } else { self.fail(msg) }
    }
    fn note(&self, msg: impl AsRef<str>) {
        println!("note  {}", msg.as_ref());
    }
}

/// A panel target or a rule expression to check: (allowlist id, label, PromQL).
#[derive(Debug, Clone)]
struct Item {
    id: String,
    label: String,
    expr: String,
}

#[derive(Debug, Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize)]
struct RuleGroup {
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
struct RawRule {
    record: Option<String>,
    alert: Option<String>,
    expr: Option<String>,
}

#[derive(Debug, Clone)]
struct Rule {
    /// `record` or `alert`.
    kind: &'static str,
    name: String,
    expr: Option<String>,
    file: String,
}

struct Checker {
    repo: PathBuf,
    promtool: PathBuf,
    r: Report,
}

fn glob(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(suffix))
        })
        .collect();
    out.sort();
    out
}

fn run(cmd: &Path, args: &[&str]) -> (bool, String) {
    match Command::new(cmd).args(args).output() {
        Ok(o) => {
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            (o.status.success(), text.trim().to_owned())
        }
        Err(e) => (false, format!("cannot run {}: {e}", cmd.display())),
    }
}

/// The collector's own metrics the dashboards may use (its health panels): vmagent's, which
/// Prometheus scrapes as `job="vmagent"` on both local paths.
pub const COLLECTOR_METRICS: &[&str] = &[
    "up",
    "vmagent_rows_inserted_total",
    "vmagent_remotewrite_requests_total",
    "vmagent_remotewrite_pending_data_bytes",
    "vmagent_remotewrite_packets_dropped_total",
];

/// The Prometheus series names the functions export (and the collector's own, for its health
/// panels), and the histograms (bare names).
fn exported_metrics() -> (HashSet<String>, HashSet<&'static str>) {
    let allowed = METRICS
        .iter()
        .flat_map(|m| m.exported_names())
        .chain(COLLECTOR_METRICS.iter().map(|m| (*m).to_owned()))
        .collect();
    let histograms = METRICS
        .iter()
        .filter(|m| m.kind == MetricKind::Histogram)
        .map(|m| m.name)
        .collect();
    (allowed, histograms)
}

/// promtool: `$PROMTOOL`, else local/.tools/root/usr/bin/promtool, else on PATH, else
/// `local/metrics.sh install` extracts it.
pub fn find_promtool(repo: &Path) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("PROMTOOL") {
        return Ok(p.into());
    }
    let local = repo.join("local/.tools/root/usr/bin/promtool");
    if local.exists() {
        return Ok(local);
    }
    if let Some(p) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("promtool"))
        .find(|p| p.exists())
    {
        return Ok(p);
    }
    let status = Command::new("bash")
        .arg(repo.join("local/metrics.sh"))
        .arg("install")
        .stdout(std::process::Stdio::null())
        .status()
        .context("running local/metrics.sh install")?;
    if status.success() && local.exists() {
        Ok(local)
    } else {
        bail!("promtool not found (set PROMTOOL or run local/metrics.sh install)")
    }
}

pub fn main(repo: &Path, args: &[String]) -> Result<i32> {
    let options = match Options::parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("check-observability: {e}");
            eprintln!(
                "usage: cargo xtask check-observability [--live PROMETHEUS_URL] [--allowlist FILE] [--verbose]"
            );
            return Ok(2);
        }
    };
    let promtool = match find_promtool(repo) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("check-observability: {e}");
            return Ok(2);
        }
    };
    let mut c = Checker {
        repo: repo.to_owned(),
        promtool,
        r: Report {
            passed: 0,
            failed: 0,
            verbose: options.verbose,
        },
    };
    c.run(&options);
    println!(
        "check-observability: {} passed, {} failed",
        c.r.passed, c.r.failed
    );
    Ok(if c.r.failed > 0 { 1 } else { 0 })
}

impl Checker {
    fn rel(&self, p: &Path) -> String {
        p.strip_prefix(&self.repo)
            .unwrap_or(p)
            .display()
            .to_string()
    }

    fn run(&mut self, options: &Options) {
        let obs = self.repo.join("infra/observability");
        let (allowed, histograms) = exported_metrics();

        // Rules first: their record names are valid metric names for the dashboards.
        let rule_files = glob(&obs.join("rules"), ".yml");
        let mut rules = Vec::new();
        for path in &rule_files {
            rules.extend(self.load_rules(path));
        }
        let recorded: HashSet<String> = rules
            .iter()
            .filter(|r| r.kind == "record")
            .map(|r| r.name.clone())
            .collect();
        if rule_files.is_empty() {
            self.r
                .fail("no rule files match infra/observability/rules/*.yml");
        }

        // 1. dashboards
        let dash_dir = obs.join("grafana/dashboards");
        let dash_files = glob(&dash_dir, ".json");
        if dash_files.is_empty() {
            self.r
                .fail(format!("no dashboards in {}", self.rel(&dash_dir)));
        }
        let mut targets: Vec<Item> = Vec::new();
        let mut uids: HashMap<String, String> = HashMap::new();
        for path in &dash_files {
            let (uid, t) = self.dashboard_targets(path);
            if !t.is_empty()
                && let Some(uid) = uid
            {
                if let Some(other) = uids.get(&uid) {
                    self.r.fail(format!(
                        "{}: uid {uid} also used by {other}",
                        self.rel(path)
                    ));
                }
                uids.insert(uid, self.rel(path));
            }
            targets.extend(t);
        }
        let mut target_ok: HashMap<String, bool> = HashMap::new();
        for t in &targets {
            let good = self
                .check_metric_names(&t.label, &t.expr, &allowed, &histograms, &recorded)
                .is_some();
            target_ok.insert(t.id.clone(), good);
        }
        let mut rule_items: Vec<(Rule, String, Option<Expr>)> = Vec::new();
        for rule in &rules {
            let Some(expr) = &rule.expr else {
                self.r.fail(format!(
                    "{}: {} {} has no expr this checker can read",
                    rule.file, rule.kind, rule.name
                ));
                continue;
            };
            let label = format!("{} {} {}", rule.file, rule.kind, rule.name);
            let tree = self.check_metric_names(&label, expr, &allowed, &histograms, &recorded);
            rule_items.push((rule.clone(), label, tree));
        }

        // 2. every panel expression through promtool (Prometheus' own parser)
        if !targets.is_empty() {
            self.promtool_parse(&targets);
        }

        // 3. rule files and their unit tests
        if !rule_files.is_empty() {
            let mut args = vec!["check", "rules"];
            let names: Vec<String> = rule_files.iter().map(|p| p.display().to_string()).collect();
            args.extend(names.iter().map(String::as_str));
            let (good, out) = run(&self.promtool, &args);
            let rels: Vec<String> = rule_files.iter().map(|p| self.rel(p)).collect();
            self.r.check(
                good,
                format!("promtool check rules {}", rels.join(" "))
                    + &if good {
                        String::new()
                    } else {
                        format!("\n{out}")
                    },
            );
        }
        let test_files = glob(&obs.join("tests"), ".test.yml");
        if test_files.is_empty() {
            self.r
                .fail("no rule unit tests match infra/observability/tests/*.test.yml");
        }
        for path in &test_files {
            let p = path.display().to_string();
            let (good, out) = run(&self.promtool, &["test", "rules", &p]);
            self.r.check(
                good,
                format!("promtool test rules {}", self.rel(path))
                    + &if good {
                        String::new()
                    } else {
                        format!("\n{out}")
                    },
            );
        }

        // 4. the compose path's configuration
        let compose = self.repo.join("local/compose.yaml");
        if compose.exists() {
            let local_dc = self.repo.join("local/.tools/root/usr/bin/docker-compose");
            let dc = if local_dc.exists() {
                Some(local_dc)
            } else {
                std::env::var_os("PATH")
                    .iter()
                    .flat_map(std::env::split_paths)
                    .map(|d| d.join("docker-compose"))
                    .find(|p| p.exists())
            };
            match dc {
                Some(dc) => {
                    let f = compose.display().to_string();
                    let (good, out) = run(&dc, &["-f", &f, "config", "-q"]);
                    self.r.check(
                        good,
                        "docker-compose config -q local/compose.yaml".to_owned()
                            + &if good { String::new() } else { format!("\n{out}") },
                    );
                }
                None => self.r.note(
                    "docker-compose not found (local/metrics.sh install extracts it): local/compose.yaml not validated",
                ),
            }
        }
        let prom_config = obs.join("prometheus.yml");
        if prom_config.exists() {
            let f = prom_config.display().to_string();
            let (good, out) = run(&self.promtool, &["check", "config", "--syntax-only", &f]);
            self.r.check(
                good,
                "promtool check config --syntax-only infra/observability/prometheus.yml".to_owned()
                    + &if good {
                        String::new()
                    } else {
                        format!("\n{out}")
                    },
            );
        }
        let mut yaml_files = vec![obs.join("otel-collector.yaml")];
        let prov = obs.join("grafana/provisioning");
        let mut prov_dirs: Vec<PathBuf> = fs::read_dir(&prov)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        prov_dirs.sort();
        let mut prov_files: Vec<PathBuf> = prov_dirs.iter().flat_map(|d| glob(d, ".yml")).collect();
        prov_files.sort();
        yaml_files.extend(prov_files);
        for path in &yaml_files {
            let parsed = fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|s| {
                    serde_norway::from_str::<serde_norway::Value>(&s).map_err(|e| e.to_string())
                });
            match parsed {
                Ok(_) => self.r.ok(format!("YAML parses: {}", self.rel(path))),
                Err(e) => self.r.fail(format!("{}: {e}", self.rel(path))),
            }
        }

        let static_failed = self.r.failed;
        println!(
            "static: {} dashboards, {} panel expressions, {} rules in {} files, {} rule test files{}",
            dash_files.len(),
            targets.len(),
            rules.len(),
            rule_files.len(),
            test_files.len(),
            if static_failed == 0 {
                " - all good".to_owned()
            } else {
                format!(" - {static_failed} problems")
            }
        );

        if let Some(url) = &options.live {
            let allowlist_path = options
                .allowlist
                .clone()
                .unwrap_or_else(|| obs.join("live-allowlist.txt"));
            self.live(url, &allowlist_path, &targets, &rule_items, &rules);
        }
    }

    fn load_rules(&mut self, path: &Path) -> Vec<Rule> {
        let file = self.rel(path);
        let parsed = fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_norway::from_str::<RuleFile>(&s).map_err(|e| e.to_string()));
        let groups = match parsed {
            Ok(f) => f.groups,
            Err(e) => {
                self.r.fail(format!("{file}: not a rule file: {e}"));
                return Vec::new();
            }
        };
        let mut rules = Vec::new();
        for raw in groups.into_iter().flat_map(|g| g.rules) {
            let (kind, name) = match (raw.record, raw.alert) {
                (Some(n), None) => ("record", n),
                (None, Some(n)) => ("alert", n),
                _ => {
                    self.r
                        .fail(format!("{file}: a rule needs exactly one of record/alert"));
                    continue;
                }
            };
            rules.push(Rule {
                kind,
                name,
                expr: raw.expr.map(|e| e.trim().to_owned()),
                file: file.clone(),
            });
        }
        rules
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_exported_with_their_suffixes_only() {
        let (allowed, histograms) = exported_metrics();
        assert!(allowed.contains("faas_invoke_duration_seconds_bucket"));
        assert!(allowed.contains("faas_invocations_total"));
        assert!(!allowed.contains("faas_invoke_duration_seconds"));
        assert!(histograms.contains("batch_size"));
    }

    #[test]
    fn options_parse_like_the_script() {
        let args: Vec<String> = ["--live", "http://x:9090", "-v"].map(String::from).to_vec();
        let o = Options::parse(&args).unwrap();
        assert_eq!(o.live.as_deref(), Some("http://x:9090"));
        assert!(o.verbose);
        assert!(Options::parse(&["--bogus".to_owned()]).is_err());
    }
}

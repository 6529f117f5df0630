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

/// The Prometheus series names the functions export, and the histograms (bare names).
fn exported_metrics() -> (HashSet<String>, HashSet<&'static str>) {
    let allowed = METRICS.iter().flat_map(|m| m.exported_names()).collect();
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

    /// (uid, targets) of a dashboard; structural problems fail.
    fn dashboard_targets(&mut self, path: &Path) -> (Option<String>, Vec<Item>) {
        let rel = self.rel(path);
        let dash: Value = match fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                self.r.fail(format!("{rel}: not valid JSON: {e}"));
                return (None, Vec::new());
            }
        };
        if dash.get("dashboard").is_some() && dash.get("panels").is_none() {
            self.r.fail(format!(
                "{rel}: an import wrapper ({{\"dashboard\": …}}); provisioning needs the bare dashboard"
            ));
            return (None, Vec::new());
        }
        let mut problems = Vec::new();
        let uid = dash.get("uid").and_then(Value::as_str).map(str::to_owned);
        let uid_ok = uid.as_deref().is_some_and(|u| {
            (1..=40).contains(&u.len())
                && u.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
        if !uid_ok {
            problems.push("missing or invalid uid".to_owned());
        }
        let title = dash
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if title.is_empty() {
            problems.push("missing title".to_owned());
        }
        if !dash.get("schemaVersion").is_some_and(Value::is_i64) {
            problems.push("missing schemaVersion".to_owned());
        }
        let mut variables = HashMap::new();
        for var in dash
            .pointer("/templating/list")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = var.get("name").and_then(Value::as_str).unwrap_or_default();
            let kind = var.get("type").and_then(Value::as_str).unwrap_or_default();
            if kind == "datasource" {
                continue;
            }
            let mut value = var
                .get("allValue")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or(".+")
                .to_owned();
            let include_all = var
                .get("includeAll")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if matches!(kind, "constant" | "textbox" | "custom") && !include_all {
                let query = match var.get("query") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                };
                if !query.is_empty() {
                    value = query.split(',').next().unwrap_or_default().to_owned();
                }
            }
            variables.insert(name.to_owned(), value);
        }
        let mut panels = Vec::new();
        fn collect<'a>(items: &'a [Value], out: &mut Vec<&'a Value>) {
            for p in items {
                out.push(p);
                if let Some(sub) = p.get("panels").and_then(Value::as_array) {
                    collect(sub, out);
                }
            }
        }
        if let Some(top) = dash.get("panels").and_then(Value::as_array) {
            collect(top, &mut panels);
        }
        let ids: Vec<Option<&Value>> = panels.iter().map(|p| p.get("id")).collect();
        let distinct: HashSet<String> = ids.iter().flatten().map(|v| v.to_string()).collect();
        if ids.iter().any(Option::is_none) || distinct.len() != ids.len() {
            problems.push("panel ids must be present and unique".to_owned());
        }
        let uid_text = uid.clone().unwrap_or_else(|| "None".to_owned());
        let mut targets = Vec::new();
        for p in &panels {
            let ptype = p.get("type").and_then(Value::as_str).unwrap_or_default();
            if ptype == "row" {
                continue;
            }
            let title = p.get("title").and_then(Value::as_str).unwrap_or("?");
            if p.get("gridPos").is_none() {
                problems.push(format!("panel '{title}' has no gridPos"));
            }
            let ds = p.pointer("/datasource/uid").and_then(Value::as_str);
            if !ds.is_some_and(|d| DATASOURCE_UIDS.contains(&d)) {
                problems.push(format!(
                    "panel '{title}': datasource uid {ds:?} is not the provisioned 'prometheus'"
                ));
            }
            let tlist = p
                .get("targets")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if tlist.is_empty() && !matches!(ptype, "text" | "news" | "dashlist") {
                problems.push(format!("panel '{title}' has no targets"));
            }
            let pid = p.get("id").map(Value::to_string).unwrap_or_default();
            for t in &tlist {
                let ref_id = t.get("refId").and_then(Value::as_str).unwrap_or("A");
                let tds = t.pointer("/datasource/uid").and_then(Value::as_str).or(ds);
                if !tds.is_some_and(|d| DATASOURCE_UIDS.contains(&d)) {
                    problems.push(format!(
                        "panel '{title}' target {ref_id}: datasource uid {tds:?}"
                    ));
                }
                let Some(expr) = t
                    .get("expr")
                    .and_then(Value::as_str)
                    .filter(|e| !e.is_empty())
                else {
                    problems.push(format!("panel '{title}' target {ref_id} has no expr"));
                    continue;
                };
                targets.push(Item {
                    id: format!("{uid_text}#{pid}/{ref_id}"),
                    label: format!("{rel} panel '{title}' {ref_id}"),
                    expr: promql::substitute(expr, &variables),
                });
            }
        }
        if problems.is_empty() {
            self.r
                .ok(format!("{rel}: structure ({} targets)", targets.len()));
        }
        for p in &problems {
            self.r.fail(format!("{rel}: {p}"));
        }
        (uid, targets)
    }

    /// Parses `expr` and checks its metric names; the tree when it parses.
    fn check_metric_names(
        &mut self,
        label: &str,
        expr: &str,
        allowed: &HashSet<String>,
        histograms: &HashSet<&'static str>,
        recorded: &HashSet<String>,
    ) -> Option<Expr> {
        let tree = match promql::parse(expr) {
            Ok(t) => t,
            Err(e) => {
                self.r.fail(format!("{label}: cannot parse ({e}): {expr}"));
                return None;
            }
        };
        let mut bad = Vec::new();
        for sel in selectors(&tree) {
            match sel.metric_name() {
                None => bad.push(format!("{} (no metric name)", sel.text())),
                Some(name) if histograms.contains(name) => bad.push(format!(
                    "{name} (a histogram: use {name}_bucket, _sum or _count)"
                )),
                Some(name) if !allowed.contains(name) && !recorded.contains(name) => bad.push(
                    format!("{name} (not exported: not in tradeflow_telemetry::METRICS nor a recording rule)"),
                ),
                Some(_) => {}
            }
        }
        if bad.is_empty() {
            self.r.ok(format!("metric names: {label}"));
        } else {
            self.r
                .fail(format!("{label}: unknown metrics: {}", bad.join(", ")));
        }
        Some(tree)
    }

    /// Writes `items` as recording rules and runs `promtool check rules`; on failure, one by one.
    fn promtool_parse(&mut self, items: &[Item]) {
        let check = |batch: &[&Item]| -> (bool, String) {
            let mut text = String::from("groups:\n  - name: dashboard-expressions\n    rules:\n");
            for (n, item) in batch.iter().enumerate() {
                let quoted = serde_json::to_string(&item.expr).unwrap_or_default();
                text.push_str(&format!(
                    "      - record: dashboard_expr_{n}\n        expr: {quoted}\n"
                ));
            }
            let path = std::env::temp_dir().join(format!(
                "dashboard-exprs-{}-{}.yml",
                std::process::id(),
                batch.len()
            ));
            if let Err(e) = fs::write(&path, text) {
                return (false, format!("cannot write {}: {e}", path.display()));
            }
            let p = path.display().to_string();
            let result = run(&self.promtool, &["check", "rules", &p]);
            let _ = fs::remove_file(&path);
            result
        };
        let all: Vec<&Item> = items.iter().collect();
        let (good, _) = check(&all);
        if good {
            for item in items {
                self.r.ok(format!("parses: {}", item.label));
            }
            return;
        }
        for item in items {
            let (good, out) = check(&[item]);
            if good {
                self.r.ok(format!("parses: {}", item.label));
            } else {
                self.r.fail(format!(
                    "promtool cannot parse {}: {}\n      {}",
                    item.label,
                    item.expr,
                    out.lines().last().unwrap_or_default()
                ));
            }
        }
    }

    fn live(
        &mut self,
        url: &str,
        allowlist_path: &Path,
        targets: &[Item],
        rule_items: &[(Rule, String, Option<Expr>)],
        rules: &[Rule],
    ) {
        let prom = match Prometheus::new(url) {
            Ok(p) => p,
            Err(e) => {
                self.r.fail(format!("Prometheus client: {e}"));
                return;
            }
        };
        if let Err(e) = prom.get("/api/v1/status/buildinfo", &[]) {
            self.r
                .fail(format!("Prometheus at {url} does not answer: {e}"));
            return;
        }
        let allowlist = self.load_allowlist(allowlist_path);
        let mut used = HashSet::new();
        self.live_check(&prom, targets, &allowlist, &mut used);
        let mut items = Vec::new();
        for (rule, label, tree) in rule_items {
            let (Some(tree), Some(expr)) = (tree, &rule.expr) else {
                continue;
            };
            if rule.kind == "record" {
                items.push(Item {
                    id: format!("record:{}", rule.name),
                    label: label.clone(),
                    expr: expr.clone(),
                });
                continue;
            }
            for (n, sub) in value_exprs(tree).into_iter().enumerate() {
                let text = sub.to_string();
                let short: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
                let short = if short.chars().count() <= 90 {
                    short
                } else {
                    short.chars().take(89).collect::<String>() + "…"
                };
                items.push(Item {
                    id: format!("alert:{}/value:{n}", rule.name),
                    label: format!("{label} value {short}"),
                    expr: text,
                });
            }
            let mut seen = HashSet::new();
            for sel in selectors(tree) {
                let q = sel.query();
                if !seen.insert(q.clone()) {
                    continue;
                }
                let compact: String = q.split_whitespace().collect();
                items.push(Item {
                    id: format!("alert:{}/selector:{compact}", rule.name),
                    label: format!("{label} selector {q}"),
                    expr: q,
                });
            }
        }
        self.live_check(&prom, &items, &allowlist, &mut used);
        self.loaded_rules_check(&prom, rules);
        let known: HashSet<&str> = targets
            .iter()
            .chain(&items)
            .map(|i| i.id.as_str())
            .collect();
        let rel = self.rel(allowlist_path);
        for stale in allowlist.keys() {
            if !known.contains(stale.as_str()) {
                self.r.fail(format!(
                    "{rel}: {stale} matches no panel or rule (stale entry)"
                ));
            }
        }
        println!(
            "live: {} panel expressions and {} rule expressions/selectors queried at {url}; {} allowlisted",
            targets.len(),
            items.len(),
            used.len()
        );
    }

    fn load_allowlist(&mut self, path: &Path) -> BTreeMap<String, String> {
        let mut entries = BTreeMap::new();
        let Ok(text) = fs::read_to_string(path) else {
            return entries;
        };
        let rel = self.rel(path);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let reason = reason.trim();
            if reason.len() < 10 {
                self.r.fail(format!(
                    "{rel}:{}: an entry needs an id and a reason",
                    n + 1
                ));
                continue;
            }
            entries.insert(id.to_owned(), reason.to_owned());
        }
        entries
    }

    fn live_check(
        &mut self,
        prom: &Prometheus,
        items: &[Item],
        allowlist: &BTreeMap<String, String>,
        used: &mut HashSet<String>,
    ) {
        for item in items {
            match prom.query(&item.expr) {
                Err(e) => self.r.fail(format!(
                    "{}: query error: {e}\n      {}",
                    item.label, item.expr
                )),
                Ok(Data::Some(detail)) => {
                    if allowlist.contains_key(&item.id) {
                        used.insert(item.id.clone());
                        self.r.note(format!(
                            "{} has data now ({detail}); its allowlist entry covers runs without it",
                            item.id
                        ));
                    }
                    self.r.ok(format!("data: {} ({detail})", item.label));
                }
                Ok(Data::None(detail)) => match allowlist.get(&item.id) {
                    Some(reason) => {
                        used.insert(item.id.clone());
                        println!("allow {}: {detail} (allowlisted: {reason})", item.label);
                    }
                    None => self.r.fail(format!(
                        "{}: {detail}\n      id {}\n      {}",
                        item.label, item.id, item.expr
                    )),
                },
            }
        }
    }

    fn loaded_rules_check(&mut self, prom: &Prometheus, rules: &[Rule]) {
        let body = match prom.get("/api/v1/rules", &[]) {
            Ok(b) => b,
            Err(e) => {
                self.r.fail(format!("Prometheus /api/v1/rules: {e}"));
                return;
            }
        };
        let mut loaded: HashMap<(String, String), &Value> = HashMap::new();
        for group in body
            .pointer("/data/groups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for r in group
                .get("rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let s = |k: &str| {
                    r.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                loaded.insert((s("type"), s("name")), r);
            }
        }
        let mut firing = Vec::new();
        for rule in rules {
            let kind = if rule.kind == "alert" {
                "alerting"
            } else {
                "recording"
            };
            let s = |r: &Value, k: &str| {
                r.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            match loaded.get(&(kind.to_owned(), rule.name.clone())) {
                None => self.r.fail(format!(
                    "Prometheus has not loaded {} {} of {} (rule_files glob? reload with local/metrics.sh reload)",
                    rule.kind, rule.name, rule.file
                )),
                Some(r) if s(r, "health") == "err" => self.r.fail(format!(
                    "{} {}: Prometheus evaluation error: {}",
                    rule.kind,
                    rule.name,
                    s(r, "lastError")
                )),
                Some(r) => {
                    self.r.ok(format!(
                        "loaded: {} {} ({})",
                        rule.kind,
                        rule.name,
                        s(r, "health")
                    ));
                    let state = s(r, "state");
                    if kind == "alerting" && (state == "pending" || state == "firing") {
                        firing.push(format!("{} ({state})", rule.name));
                    }
                }
            }
        }
        if !firing.is_empty() {
            self.r.note(format!(
                "alerts pending or firing now: {}",
                firing.join(", ")
            ));
        }
    }
}

enum Data {
    Some(String),
    None(String),
}

struct Prometheus {
    url: String,
    client: reqwest::blocking::Client,
}

impl Prometheus {
    fn new(url: &str) -> Result<Prometheus> {
        Ok(Prometheus {
            url: url.trim_end_matches('/').to_owned(),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    /// The JSON body of a successful API call; the API's error text otherwise.
    fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let resp = self
            .client
            .get(format!("{}{path}", self.url))
            .query(query)
            .send()
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .map_err(|_| format!("HTTP {}", status.as_u16()))?;
        if body.get("status").and_then(Value::as_str) == Some("success") {
            Ok(body)
        } else {
            Err(body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("query failed")
                .to_owned())
        }
    }

    fn query(&self, expr: &str) -> Result<Data, String> {
        let body = self.get("/api/v1/query", &[("query", expr)])?;
        let data = body.get("data").ok_or("no data in the answer")?;
        let result = data.get("result").cloned().unwrap_or(Value::Null);
        let as_text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let values: Vec<String> = match data.get("resultType").and_then(Value::as_str) {
            Some("scalar" | "string") => vec![result.get(1).map(as_text).unwrap_or_default()],
            Some("vector") => result
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r.pointer("/value/1").map(as_text).unwrap_or_default())
                .collect(),
            _ => result
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| {
                    r.get("values")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .map(|v| v.get(1).map(as_text).unwrap_or_default())
                .collect(),
        };
        if values.is_empty() {
            return Ok(Data::None("no data (empty result)".to_owned()));
        }
        if values.iter().all(|v| v == "NaN") {
            return Ok(Data::None(format!("only NaN ({} series)", values.len())));
        }
        Ok(Data::Some(format!("{} series", values.len())))
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

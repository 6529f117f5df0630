//! Dashboard checks: structure, metric names, and every panel expression through promtool.

use super::*;

impl Checker {
    /// (uid, targets) of a dashboard; structural problems fail.
    pub(super) fn dashboard_targets(&mut self, path: &Path) -> (Option<String>, Vec<Item>) {
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
    pub(super) fn check_metric_names(
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
    pub(super) fn promtool_parse(&mut self, items: &[Item]) {
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
}

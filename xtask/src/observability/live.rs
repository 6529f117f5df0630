//! Live checks against a Prometheus: every panel and rule returns data, rules are loaded.

use super::*;

impl Checker {
    pub(super) fn live(
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

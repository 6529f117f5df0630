//! `tradeflow dashboard render`: the provisioned Grafana dashboards (the same JSON files Grafana
//! loads) drawn without Grafana. Each panel's PromQL runs against Prometheus' `query_range` API
//! over the chosen range; the page is one HTML file with the panels as inline SVG charts, no
//! script or style from the network.
//!
//! Each panel is a `<section class="panel">` carrying `data-panel` (`<dashboard uid>#<panel id>`,
//! the ids of infra/observability/live-allowlist.txt), `data-status` (`ok`: some target returned
//! data; `empty`; `error`), `data-series` and `data-points`, so a browser test can check every
//! panel of the rendered page.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, bail};

use crate::cli::{Global, RenderArgs};
use crate::output::Output;

/// The provisioned dashboards, compiled in (read from disk with `--dashboards DIR`).
const PROVISIONED: [(&str, &str); 3] = [
    (
        "system-overview.json",
        include_str!("../../../infra/observability/grafana/dashboards/system-overview.json"),
    ),
    (
        "functions.json",
        include_str!("../../../infra/observability/grafana/dashboards/functions.json"),
    ),
    (
        "cost.json",
        include_str!("../../../infra/observability/grafana/dashboards/cost.json"),
    ),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    pub uid: String,
    pub title: String,
    pub panels: Vec<Panel>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub id: i64,
    pub title: String,
    /// `timeseries`, `stat`, or `row` (a section heading).
    pub kind: String,
    pub unit: String,
    /// Width on Grafana's 24-column grid.
    pub width: u8,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub ref_id: String,
    pub expr: String,
    pub legend: String,
}

/// Parses one dashboard: its panels in order (a collapsed row's panels after it; text panels
/// left out), each target's expression with the dashboard's variables replaced by their "All"
/// values (a variable without "All", such as `stage`, by `.*`).
pub fn parse_dashboard(file: &str, text: &str) -> anyhow::Result<Dashboard> {
    let d: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("{file} is not JSON"))?;
    let str_of = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let variables: Vec<(String, String)> = d["templating"]["list"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|v| {
                    let value = if v["includeAll"].as_bool() == Some(true) {
                        v["allValue"].as_str().unwrap_or(".*").to_owned()
                    } else {
                        match &v["current"]["value"] {
                            serde_json::Value::String(s) => s.clone(),
                            serde_json::Value::Array(a) => a
                                .iter()
                                .filter_map(|x| x.as_str())
                                .collect::<Vec<_>>()
                                .join("|"),
                            _ => ".*".to_owned(),
                        }
                    };
                    (str_of(v, "name"), value)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut panels = Vec::new();
    let mut push = |p: &serde_json::Value| {
        // A text panel (the Cost dashboard's "what these estimates leave out") has no query.
        if p["type"].as_str() == Some("text") {
            return;
        }
        let targets = p["targets"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .filter(|t| t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()))
                    .map(|t| Target {
                        ref_id: str_of(t, "refId"),
                        expr: substitute(&str_of(t, "expr"), &variables),
                        legend: str_of(t, "legendFormat"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        panels.push(Panel {
            id: p["id"].as_i64().unwrap_or_default(),
            title: str_of(p, "title"),
            kind: str_of(p, "type"),
            unit: p["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .unwrap_or("short")
                .to_owned(),
            width: p["gridPos"]["w"]
                .as_u64()
                .and_then(|w| u8::try_from(w.clamp(1, 24)).ok())
                .unwrap_or(12),
            targets,
        });
    };
    for p in d["panels"].as_array().into_iter().flatten() {
        push(p);
        for inner in p["panels"].as_array().into_iter().flatten() {
            push(inner);
        }
    }
    Ok(Dashboard {
        uid: str_of(&d, "uid"),
        title: str_of(&d, "title"),
        panels,
    })
}

/// Replaces `$name`, `${name}` and `[[name]]` with the variable's value.
fn substitute(expr: &str, variables: &[(String, String)]) -> String {
    let mut out = expr.to_owned();
    for (name, value) in variables {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("[[{name}]]"), value);
        // `$name` not followed by more of a name (`$job` but not `$jobs`).
        let pattern = format!("${name}");
        let mut result = String::new();
        let mut rest = out.as_str();
        while let Some(i) = rest.find(&pattern) {
            let after = &rest[i + pattern.len()..];
            result.push_str(&rest[..i]);
            if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                result.push_str(&pattern);
            } else {
                result.push_str(value);
            }
            rest = after;
        }
        result.push_str(rest);
        out = result;
    }
    out
}

/// Grafana's built-in interval variables for a range query.
fn builtins(expr: &str, step: i64, range: i64) -> String {
    let rate = (4 * step).max(60);
    expr.replace("$__rate_interval", &format!("{rate}s"))
        .replace("${__rate_interval}", &format!("{rate}s"))
        .replace("$__interval", &format!("{step}s"))
        .replace("${__interval}", &format!("{step}s"))
        .replace("$__range", &format!("{range}s"))
        .replace("${__range}", &format!("{range}s"))
}

/// The dashboards to render.
fn load(dir: Option<&Path>) -> anyhow::Result<Vec<Dashboard>> {
    let Some(dir) = dir else {
        return PROVISIONED
            .iter()
            .map(|(file, text)| parse_dashboard(file, text))
            .collect();
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no *.json dashboards in {}", dir.display());
    }
    files
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            parse_dashboard(&p.display().to_string(), &text)
        })
        .collect()
}

/// One series of a range query.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// What one target returned.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetData {
    Series(Vec<Series>),
    Error(String),
}

/// `legend` with `{{label}}` replaced from the series' labels (the metric text without one).
fn legend_of(legend: &str, labels: &serde_json::Map<String, serde_json::Value>) -> String {
    if legend.is_empty() || legend == "__auto" {
        let inner: Vec<String> = labels
            .iter()
            .filter(|(k, _)| *k != "__name__")
            .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or_default()))
            .collect();
        return if inner.is_empty() {
            "value".to_owned()
        } else {
            format!("{{{}}}", inner.join(", "))
        };
    }
    let mut out = String::new();
    let mut rest = legend;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = after[..end].trim();
                out.push_str(labels.get(key).and_then(|v| v.as_str()).unwrap_or(""));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses a `query_range` answer.
pub fn parse_matrix(legend: &str, body: &serde_json::Value) -> TargetData {
    if body["status"] != "success" {
        let error = body["error"].as_str().unwrap_or("no status in the answer");
        return TargetData::Error(error.to_owned());
    }
    let series = body["data"]["result"]
        .as_array()
        .map(|result| {
            result
                .iter()
                .map(|s| {
                    let labels = s["metric"].as_object().cloned().unwrap_or_default();
                    let points = s["values"]
                        .as_array()
                        .map(|vs| {
                            vs.iter()
                                .filter_map(|v| {
                                    let t = v[0].as_f64()?;
                                    let y: f64 = v[1].as_str()?.parse().ok()?;
                                    y.is_finite().then_some((t, y))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    Series {
                        name: legend_of(legend, &labels),
                        points,
                    }
                })
                .filter(|s: &Series| !s.points.is_empty())
                .collect()
        })
        .unwrap_or_default();
    TargetData::Series(series)
}

/// Parses `30s`, `15m`, `6h`, `2d`, `1w` (or plain seconds).
fn parse_duration(text: &str) -> anyhow::Result<i64> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = number
        .parse()
        .with_context(|| format!("--since {text:?}: expected e.g. 30m, 6h, 2d"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => bail!("--since {text:?}: unit must be s, m, h, d or w"),
    };
    if n <= 0 {
        bail!("--since {text:?} must be positive");
    }
    Ok(n * secs)
}

fn parse_time(text: &str) -> anyhow::Result<i64> {
    if let Ok(secs) = text.trim().parse::<i64>() {
        return Ok(secs);
    }
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp())
        .with_context(|| format!("--until {text:?}: expected Unix seconds or RFC 3339"))
}

pub async fn render(global: &Global, args: RenderArgs) -> anyhow::Result<()> {
    let out = Output::new(global.json);
    let dashboards = load(args.dashboards.as_deref())?;
    let range = parse_duration(&args.since)?;
    let end = match &args.until {
        Some(t) => parse_time(t)?,
        None => chrono::Utc::now().timestamp(),
    };
    let start = end - range;
    // About 240 points across the chart, never under 5 s.
    let step = (range / 240).max(5);
    let base = args.prometheus.trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    // One cheap query first: an unreachable Prometheus is one error, not one per panel.
    let probe = client
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", "vector(1)")])
        .send()
        .await;
    match probe {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => bail!(
            "Prometheus at {base} answered {} to a test query (is it Prometheus' HTTP API?)",
            r.status()
        ),
        Err(e) => bail!(
            "cannot reach Prometheus at {base}: {} (start it with `local/metrics.sh start`, or pass --prometheus URL)",
            crate::output::short_error(&e)
        ),
    }
    let mut results: Vec<Vec<Vec<TargetData>>> = Vec::new();
    let (mut panels_ok, mut panels_total) = (0usize, 0usize);
    for d in &dashboards {
        let mut per_panel = Vec::new();
        for p in &d.panels {
            let mut per_target = Vec::new();
            for t in &p.targets {
                let expr = builtins(&t.expr, step, range);
                let resp = client
                    .get(format!("{base}/api/v1/query_range"))
                    .query(&[
                        ("query", expr.as_str()),
                        ("start", &start.to_string()),
                        ("end", &end.to_string()),
                        ("step", &step.to_string()),
                    ])
                    .send()
                    .await;
                let data = match resp {
                    Err(e) => TargetData::Error(crate::output::short_error(&e)),
                    Ok(r) => match r.json::<serde_json::Value>().await {
                        Ok(body) => parse_matrix(&t.legend, &body),
                        Err(e) => TargetData::Error(crate::output::short_error(&e)),
                    },
                };
                per_target.push(data);
            }
            if !p.targets.is_empty() {
                panels_total += 1;
                if panel_status(&per_target) == "ok" {
                    panels_ok += 1;
                }
            }
            per_panel.push(per_target);
        }
        results.push(per_panel);
    }
    let html = page(&dashboards, &results, &base, start, end, step);
    std::fs::write(&args.out, html).with_context(|| format!("writing {}", args.out.display()))?;
    if out.json {
        out.json(&serde_json::json!({
            "out": args.out, "panels": panels_total, "panels_with_data": panels_ok,
            "start": start, "end": end, "step": step,
        }));
    } else {
        println!(
            "wrote {}: {} dashboards, {panels_ok} of {panels_total} panels with data ({} to {} UTC, step {step} s)",
            args.out.display(),
            dashboards.len(),
            crate::output::time(start),
            crate::output::time(end),
        );
    }
    Ok(())
}

fn panel_status(targets: &[TargetData]) -> &'static str {
    let has_data = targets
        .iter()
        .any(|t| matches!(t, TargetData::Series(s) if !s.is_empty()));
    if has_data {
        "ok"
    } else if targets.iter().any(|t| matches!(t, TargetData::Error(_))) {
        "error"
    } else {
        "empty"
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A value in the panel's unit, short.
pub fn format_value(v: f64, unit: &str) -> String {
    let si = |v: f64| {
        let a = v.abs();
        if a >= 1e9 {
            format!("{:.2}G", v / 1e9)
        } else if a >= 1e6 {
            format!("{:.2}M", v / 1e6)
        } else if a >= 1e4 {
            format!("{:.1}k", v / 1e3)
        } else if a >= 100.0 || a == 0.0 {
            format!("{v:.0}")
        } else if a >= 1.0 {
            format!("{v:.2}")
        } else {
            format!("{v:.3}")
        }
    };
    match unit {
        "s" => {
            let a = v.abs();
            if a == 0.0 {
                "0 s".into()
            } else if a < 1e-3 {
                format!("{:.0} µs", v * 1e6)
            } else if a < 1.0 {
                format!("{:.1} ms", v * 1e3)
            } else {
                format!("{v:.2} s")
            }
        }
        "percent" => format!("{v:.1} %"),
        "ops" => format!("{}/s", si(v)),
        "currencyUSD" => {
            if v.abs() < 0.01 && v != 0.0 {
                format!("${v:.6}")
            } else {
                format!("${v:.2}")
            }
        }
        _ => si(v),
    }
}

const COLOURS: [&str; 10] = [
    "#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0",
    "#508642", "#cca300",
];

/// A line chart of `series` over [start, end].
fn line_chart(series: &[Series], unit: &str, start: i64, end: i64, step: i64) -> String {
    let (w, h, left, right, top, bottom) = (560.0, 190.0, 64.0, 8.0, 8.0, 22.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let values = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (mut lo, mut hi) = values.fold((0.0f64, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi <= lo {
        hi = lo + 1.0;
    }
    if lo > 0.0 {
        lo = 0.0;
    }
    let span = (end - start).max(1) as f64;
    let x = |t: f64| left + (t - start as f64) / span * pw;
    let y = |v: f64| top + ph - (v - lo) / (hi - lo) * ph;
    let mut svg = format!(
        r##"<svg class="chart" viewBox="0 0 {w} {h}" width="100%" role="img" xmlns="http://www.w3.org/2000/svg">"##
    );
    for i in 0..=4 {
        let v = lo + (hi - lo) * f64::from(i) / 4.0;
        let yy = y(v);
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#2c3235"/><text x="{}" y="{:.1}" text-anchor="end" class="axis">{}</text>"##,
            w - right,
            left - 4.0,
            yy + 3.0,
            escape(&format_value(v, unit))
        );
    }
    for i in 0..=4 {
        let t = start as f64 + span * f64::from(i) / 4.0;
        let label = chrono::DateTime::from_timestamp(t as i64, 0)
            .map(|d| d.format("%H:%M").to_string())
            .unwrap_or_default();
        let anchor = match i {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{}" text-anchor="{anchor}" class="axis">{label}</text>"##,
            x(t),
            h - 6.0
        );
    }
    let gap = (2 * step).max(1) as f64 + 0.5;
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        // A break in the data is a break in the line.
        let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
        for &(t, v) in &s.points {
            match runs.last_mut() {
                Some(run) if run.last().is_some_and(|p| t - p.0 <= gap) => run.push((t, v)),
                _ => runs.push(vec![(t, v)]),
            }
        }
        for run in runs {
            if run.len() == 1 {
                let (t, v) = run[0];
                let _ = write!(
                    svg,
                    r##"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{colour}"><title>{}</title></circle>"##,
                    x(t),
                    y(v),
                    escape(&s.name)
                );
                continue;
            }
            let points: Vec<String> = run
                .iter()
                .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
                .collect();
            let _ = write!(
                svg,
                r##"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"><title>{}</title></polyline>"##,
                points.join(" "),
                escape(&s.name)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn legend(series: &[Series], unit: &str) -> String {
    let mut out = String::from(r#"<ul class="legend">"#);
    for (i, s) in series.iter().enumerate() {
        let last = s.points.last().map(|p| p.1).unwrap_or_default();
        let _ = write!(
            out,
            r#"<li><span class="swatch" style="background:{}"></span>{} <b>{}</b></li>"#,
            COLOURS[i % COLOURS.len()],
            escape(&s.name),
            escape(&format_value(last, unit))
        );
    }
    out.push_str("</ul>");
    out
}

fn stat(series: &[Series], unit: &str) -> String {
    let mut out = String::from(r#"<div class="stats">"#);
    for s in series.iter().take(6) {
        let last = s.points.last().map(|p| p.1).unwrap_or_default();
        let _ = write!(
            out,
            r#"<div class="stat"><div class="value">{}</div><div class="name">{}</div></div>"#,
            escape(&format_value(last, unit)),
            escape(&s.name)
        );
    }
    out.push_str("</div>");
    out
}

fn page(
    dashboards: &[Dashboard],
    results: &[Vec<Vec<TargetData>>],
    prometheus: &str,
    start: i64,
    end: i64,
    step: i64,
) -> String {
    let mut body = String::new();
    for (d, per_panel) in dashboards.iter().zip(results) {
        let _ = write!(
            body,
            r#"<h2 id="{}">{}</h2><div class="grid">"#,
            escape(&d.uid),
            escape(&d.title)
        );
        for (p, targets) in d.panels.iter().zip(per_panel) {
            if p.kind == "row" {
                let _ = write!(body, r#"<h3 class="row">{}</h3>"#, escape(&p.title));
                continue;
            }
            let series: Vec<Series> = targets
                .iter()
                .filter_map(|t| match t {
                    TargetData::Series(s) => Some(s.clone()),
                    TargetData::Error(_) => None,
                })
                .flatten()
                .collect();
            let points: usize = series.iter().map(|s| s.points.len()).sum();
            let status = panel_status(targets);
            let _ = write!(
                body,
                r#"<section class="panel {status}" style="grid-column: span {}" data-panel="{}#{}" data-status="{status}" data-series="{}" data-points="{points}"><h4>{}</h4>"#,
                p.width,
                escape(&d.uid),
                p.id,
                series.len(),
                escape(&p.title)
            );
            for (t, data) in p.targets.iter().zip(targets) {
                let empty = matches!(data, TargetData::Series(s) if s.is_empty());
                if let TargetData::Error(e) = data {
                    let _ = write!(
                        body,
                        r#"<p class="error" data-target="{}">query {} failed: {}</p>"#,
                        escape(&t.ref_id),
                        escape(&t.ref_id),
                        escape(e)
                    );
                } else if empty {
                    let _ = write!(
                        body,
                        r#"<p class="nodata" data-target="{}">no data for {}: <code>{}</code></p>"#,
                        escape(&t.ref_id),
                        escape(&t.ref_id),
                        escape(&t.expr)
                    );
                }
            }
            if !series.is_empty() {
                if p.kind == "stat" {
                    body.push_str(&stat(&series, &p.unit));
                }
                body.push_str(&line_chart(&series, &p.unit, start, end, step));
                if p.kind != "stat" {
                    body.push_str(&legend(&series, &p.unit));
                }
            }
            body.push_str("</section>");
        }
        body.push_str("</div>");
    }
    let generated = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC");
    format!(
        r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tradeflow dashboards</title>
<style>
body {{ background:#111217; color:#ccccdc; font:13px/1.4 system-ui, sans-serif; margin:16px; }}
h1 {{ font-size:18px; margin:0 0 4px; }} h2 {{ font-size:16px; margin:24px 0 8px; border-bottom:1px solid #2c3235; }}
h3.row {{ grid-column: span 24; font-size:14px; margin:12px 0 0; color:#9fa7b3; }}
h4 {{ font-size:13px; margin:0 0 6px; }}
.meta {{ color:#8e8e8e; }}
.grid {{ display:grid; grid-template-columns:repeat(24, 1fr); gap:8px; }}
.panel {{ background:#181b1f; border:1px solid #2c3235; border-radius:4px; padding:8px; min-width:0; }}
.panel.empty, .panel.error {{ border-color:#5a3a2a; }}
.chart text.axis {{ fill:#8e8e8e; font-size:10px; }}
.legend {{ list-style:none; padding:0; margin:4px 0 0; font-size:11px; }}
.legend li {{ display:inline-block; margin-right:12px; }}
.swatch {{ display:inline-block; width:10px; height:3px; margin-right:4px; vertical-align:middle; }}
.stats {{ display:flex; flex-wrap:wrap; gap:12px; }} .stat .value {{ font-size:24px; color:#73bf69; }} .stat .name {{ font-size:11px; }}
.nodata, .error {{ color:#e0a060; font-size:11px; }} code {{ font-size:10px; word-break:break-all; }}
</style></head>
<body data-rendered="no">
<h1>tradeflow dashboards</h1>
<p class="meta">{} to {} UTC, step {step} s, from {} &middot; generated {generated} by <code>tradeflow dashboard render</code> from the provisioned Grafana dashboards &middot; <span id="summary"></span></p>
{body}
<script>
(function () {{
  var panels = document.querySelectorAll("section.panel");
  var ok = document.querySelectorAll('section.panel[data-status="ok"]').length;
  document.getElementById("summary").textContent = ok + " of " + panels.length + " panels with data";
  document.body.setAttribute("data-rendered", String(panels.length));
}})();
</script>
</body></html>
"##,
        crate::output::time(start),
        crate::output::time(end),
        escape(prometheus),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_provisioned_dashboards_parse_with_every_target() {
        let dashboards = load(None).unwrap();
        assert_eq!(dashboards.len(), 3);
        for d in &dashboards {
            assert!(!d.uid.is_empty());
            for p in d.panels.iter().filter(|p| p.kind != "row") {
                assert!(!p.targets.is_empty(), "{}#{} has no targets", d.uid, p.id);
                for t in &p.targets {
                    // Template variables are filled in here, Grafana's interval variables
                    // ($__rate_interval, ...) per query.
                    let expr = builtins(&t.expr, 60, 3600);
                    assert!(!expr.contains('$'), "{}#{}: {}", d.uid, p.id, expr);
                }
            }
        }
        let functions = dashboards.iter().find(|d| d.title == "Functions").unwrap();
        assert!(functions.panels[0].targets[0].expr.contains(r#"job=~".+""#));
    }

    #[test]
    fn the_compiled_in_dashboards_are_the_files_on_disk() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../infra/observability/grafana/dashboards");
        let on_disk = load(Some(&dir)).unwrap();
        let compiled = load(None).unwrap();
        for d in &on_disk {
            assert!(
                compiled.contains(d),
                "{} differs or is not compiled in",
                d.uid
            );
        }
        assert_eq!(on_disk.len(), compiled.len());
    }

    #[test]
    fn variables_and_legends_are_filled_in() {
        let vars = vec![("job".to_owned(), ".+".to_owned())];
        assert_eq!(
            substitute(r#"x{job=~"$job", j="$jobs", k="${job}"}"#, &vars),
            r#"x{job=~".+", j="$jobs", k=".+"}"#
        );
        let labels = serde_json::json!({"job": "executor", "status": "failed"});
        let labels = labels.as_object().unwrap();
        assert_eq!(
            legend_of("{{job}} ({{ status }})", labels),
            "executor (failed)"
        );
        assert_eq!(
            legend_of("", labels),
            r#"{job="executor", status="failed"}"#
        );
    }

    #[test]
    fn a_range_answer_becomes_series_and_errors_stay_errors() {
        let body = serde_json::json!({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"status": "completed"}, "values": [[100, "1"], [105, "NaN"], [110, "2.5"]]},
            {"metric": {"status": "failed"}, "values": []}
        ]}});
        let TargetData::Series(s) = parse_matrix("{{status}}", &body) else {
            panic!()
        };
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].name, "completed");
        assert_eq!(s[0].points, vec![(100.0, 1.0), (110.0, 2.5)]);
        let bad = serde_json::json!({"status": "error", "error": "parse error"});
        assert_eq!(
            parse_matrix("", &bad),
            TargetData::Error("parse error".into())
        );
    }

    #[test]
    fn values_read_in_their_unit() {
        assert_eq!(format_value(0.0123, "s"), "12.3 ms");
        assert_eq!(format_value(2.0, "s"), "2.00 s");
        assert_eq!(format_value(97.25, "percent"), "97.2 %");
        assert_eq!(format_value(12_345.0, "short"), "12.3k");
        assert_eq!(format_value(0.5, "ops"), "0.500/s");
        assert_eq!(format_value(3.5, "currencyUSD"), "$3.50");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("15m").unwrap(), 900);
        assert_eq!(parse_duration("2d").unwrap(), 172_800);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0h").is_err());
    }

    #[test]
    fn the_page_marks_every_panel_and_escapes_text() {
        let d = parse_dashboard(
            "t.json",
            r#"{"uid": "u", "title": "T <1>", "panels": [
                {"id": 1, "type": "timeseries", "title": "a & b", "gridPos": {"w": 12},
                 "targets": [{"refId": "A", "expr": "up", "legendFormat": "{{job}}"}]},
                {"id": 2, "type": "stat", "title": "s", "targets": [{"refId": "A", "expr": "x"}]}
            ]}"#,
        )
        .unwrap();
        let results = vec![vec![
            vec![TargetData::Series(vec![Series {
                name: "<j>".into(),
                points: vec![(0.0, 1.0), (60.0, 2.0)],
            }])],
            vec![TargetData::Series(Vec::new())],
        ]];
        let html = page(&[d], &results, "http://p", 0, 120, 60);
        assert!(
            html.contains(r#"data-panel="u#1" data-status="ok" data-series="1" data-points="2""#)
        );
        assert!(html.contains(r#"data-panel="u#2" data-status="empty""#));
        assert!(
            html.contains("T &lt;1&gt;")
                && html.contains("a &amp; b")
                && html.contains("&lt;j&gt;")
        );
        assert!(html.contains("<polyline"));
        assert!(!html.contains("<script src"), "no external script");
        assert!(!html.contains("<link"), "no external style");
    }
}

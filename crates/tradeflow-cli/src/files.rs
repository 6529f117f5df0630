//! Pipeline files (YAML or JSON, one pipeline or a list) read into the core crate's [`Pipeline`]
//! with its own serde decoding and [`Pipeline::validate`]: the checks the dispatcher and the
//! executor apply to a stored item (tradeflow-aws decodes items with the same types). Errors
//! name the file, the field's path and its line.

use std::path::Path;

use anyhow::{Context, bail};
use serde::de::DeserializeOwned;
use tradeflow_core::pipeline::Pipeline;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Yaml,
    Json,
}

fn format_of(path: &Path, text: &str) -> Format {
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => Format::Yaml,
        Some("json") => Format::Json,
        _ if text.trim_start().starts_with(['{', '[']) => Format::Json,
        _ => Format::Yaml,
    }
}

/// A decoding error: the field's path (`tickers[1]`, `risk.risk_per_trade`), the line (1-based)
/// when known, and the message.
#[derive(Debug)]
pub struct FieldError {
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

/// Decodes `text` as one `T` or a list, reporting where it failed.
fn decode<T: DeserializeOwned>(text: &str, format: Format) -> Result<Vec<T>, FieldError> {
    // First as a list (the path of an error then starts with its index), else as one value.
    let as_list = text.trim_start().starts_with('[')
        || (format == Format::Yaml && text.trim_start().starts_with("- "));
    macro_rules! go {
        ($t:ty) => {
            match format {
                Format::Json => {
                    let mut de = serde_json::Deserializer::from_str(text);
                    let r: Result<$t, _> = serde_path_to_error::deserialize(&mut de);
                    r.map_err(|e| FieldError {
                        path: e.path().to_string(),
                        line: Some(e.inner().line()),
                        message: strip_position(&e.inner().to_string()),
                    })
                    .and_then(|v| {
                        de.end().map_err(|e| FieldError {
                            path: ".".into(),
                            line: Some(e.line()),
                            message: strip_position(&e.to_string()),
                        })?;
                        Ok(v)
                    })
                }
                Format::Yaml => {
                    let de = serde_norway::Deserializer::from_str(text);
                    let r: Result<$t, _> = serde_path_to_error::deserialize(de);
                    r.map_err(|e| FieldError {
                        path: e.path().to_string(),
                        line: e.inner().location().map(|l| l.line()),
                        message: strip_position(&e.inner().to_string()),
                    })
                }
            }
        };
    }
    if as_list {
        go!(Vec<T>)
    } else {
        go!(T).map(|v| vec![v])
    }
}

/// serde_json and serde_norway end messages with " at line L column C"; the line is reported
/// on its own.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The pipelines of a file, decoded and validated; the error names the file, field and line.
pub fn read_pipelines(path: &Path) -> anyhow::Result<Vec<Pipeline>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_pipelines(path, &text)
}

/// [`read_pipelines`] of a file's text (`path` names it and gives its format).
pub fn parse_pipelines(path: &Path, text: &str) -> anyhow::Result<Vec<Pipeline>> {
    let file = path.display();
    let text = text.to_owned();
    let format = format_of(path, &text);
    let pipelines: Vec<Pipeline> = decode(&text, format).map_err(|e| {
        let at = e.line.map(|l| format!(" line {l}")).unwrap_or_default();
        let field = if e.path == "." || e.path.is_empty() {
            String::new()
        } else {
            format!(" field {}", e.path)
        };
        anyhow::anyhow!("{file}{at}:{field}: {}", e.message)
    })?;
    if pipelines.is_empty() {
        bail!("{file}: no pipelines in the file");
    }
    let mut seen = std::collections::HashSet::new();
    for (index, p) in pipelines.iter().enumerate() {
        if let Err(e) = p.validate() {
            let field = field_of_reason(&e.reason);
            let line = field.and_then(|f| line_of_field(&text, &p.pipeline_id, f));
            let at = line.map(|l| format!(" line {l}")).unwrap_or_default();
            let path = match (field, pipelines.len()) {
                (Some(f), 1) => format!(" field {f}"),
                (Some(f), _) => format!(" field [{index}].{f}"),
                (None, _) => String::new(),
            };
            bail!("{file}{at}:{path}: {e}");
        }
        if !seen.insert(p.pipeline_id.clone()) {
            bail!("{file}: pipeline_id {} appears twice", p.pipeline_id);
        }
    }
    for warning in unknown_fields(&text, format) {
        eprintln!("warning: {file}: {warning}");
    }
    Ok(pipelines)
}

/// The field [`Pipeline::validate`]'s reason is about.
fn field_of_reason(reason: &str) -> Option<&'static str> {
    [
        ("max_runtime_secs", "max_runtime_secs"),
        ("min_confidence", "min_confidence"),
        ("risk settings", "risk"),
        ("paper_order", "steps"),
        ("pipeline_id and user_id", "user_id"),
    ]
    .into_iter()
    .find(|(needle, _)| reason.contains(needle))
    .map(|(_, field)| field)
}

/// The 1-based line of `field` in the pipeline whose id is `pipeline_id`: the first line naming
/// the field after the line with the id (or the first in the file).
fn line_of_field(text: &str, pipeline_id: &str, field: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let names = |l: &str, key: &str| {
        let t = l.trim_start().trim_start_matches("- ");
        t.starts_with(&format!("\"{key}\"")) || t.starts_with(&format!("{key}:"))
    };
    let start = if pipeline_id.is_empty() {
        0
    } else {
        lines
            .iter()
            .position(|l| names(l, "pipeline_id") && l.contains(pipeline_id))
            .unwrap_or(0)
    };
    // The pipeline's fields may come before its id: look back to the object's start too.
    let back = lines[..start]
        .iter()
        .rposition(|l| l.trim_start().starts_with(['{', '-']))
        .unwrap_or(0);
    lines
        .iter()
        .enumerate()
        .skip(back)
        .find(|(_, l)| names(l, field) || l.contains(&format!("\"{field}\"")))
        .map(|(i, _)| i + 1)
}

/// Keys the pipeline type does not know (the functions ignore them; a typo for an optional
/// field would silently take its default).
fn unknown_fields(text: &str, format: Format) -> Vec<String> {
    const KNOWN: [&str; 10] = [
        "pipeline_id",
        "user_id",
        "name",
        "is_active",
        "trigger_mode",
        "tickers",
        "signal_subscriptions",
        "steps",
        "max_runtime_secs",
        "risk",
    ];
    let value: Option<serde_json::Value> = match format {
        Format::Json => serde_json::from_str(text).ok(),
        Format::Yaml => serde_norway::from_str(text).ok(),
    };
    let items = match value {
        Some(serde_json::Value::Array(items)) => items,
        Some(v) => vec![v],
        None => Vec::new(),
    };
    let mut out = Vec::new();
    for item in items {
        if let serde_json::Value::Object(map) = item {
            let id = map
                .get("pipeline_id")
                .and_then(|v| v.as_str())
                .unwrap_or("?");
            for key in map.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
                out.push(format!(
                    "pipeline {id}: unknown field `{key}` is ignored (known: {})",
                    KNOWN.join(", ")
                ));
            }
        }
    }
    out
}

/// The signals of a JSON file (one object or a list), each as its own JSON text.
pub fn read_signal_bodies(path: &Path) -> anyhow::Result<Vec<String>> {
    let file = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {file}"))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{file} line {}: {}",
            e.line(),
            strip_position(&e.to_string())
        )
    })?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        v => vec![v],
    };
    if items.is_empty() {
        bail!("{file}: no signals in the file");
    }
    Ok(items.iter().map(|v| v.to_string()).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tradeflow-cli-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    const GOOD_YAML: &str = "pipeline_id: p1\nuser_id: u1\nname: n\nis_active: true\ntrigger_mode: signal\ntickers: [aapl]\nsignal_subscriptions:\n  - signal_type: rsi_oversold\n    min_confidence: 60\n";

    #[test]
    fn a_yaml_pipeline_decodes_like_a_stored_one() {
        let p = read_pipelines(&write("good.yaml", GOOD_YAML)).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].tickers[0].as_str(), "AAPL");
        assert_eq!(p[0].max_runtime_secs, 720);
    }

    #[test]
    fn a_bad_value_is_named_with_its_field_and_line() {
        let bad = GOOD_YAML.replace("tickers: [aapl]", "tickers: [aapl, \"MS FT\"]");
        let err = read_pipelines(&write("bad-ticker.yaml", &bad))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 6"), "{err}");
        assert!(err.contains("field tickers[1]"), "{err}");
        assert!(err.contains("MS FT"), "{err}");

        let bad = GOOD_YAML.replace("min_confidence: 60", "min_confidence: 160");
        let err = read_pipelines(&write("bad-conf.yaml", &bad))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 9"), "{err}");
        assert!(
            err.contains("min_confidence 160 is not within 0 to 100"),
            "{err}"
        );

        let json = r#"[{"pipeline_id": "p1", "user_id": "u1", "name": "n", "is_active": true,
  "trigger_mode": "sometimes", "tickers": ["AAPL"]}]"#;
        let err = read_pipelines(&write("bad-mode.json", json))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("field [0].trigger_mode"), "{err}");
        assert!(err.contains("unknown variant `sometimes`"), "{err}");

        let missing = GOOD_YAML.replace("user_id: u1\n", "");
        let err = read_pipelines(&write("missing.yaml", &missing))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `user_id`"), "{err}");
    }

    #[test]
    fn the_seed_file_reads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../local/seed/pipelines.json");
        assert!(read_pipelines(&path).unwrap().len() >= 2);
    }
}

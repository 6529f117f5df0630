//! How results are shown: aligned tables for people, JSON for scripts, colours only on a
//! terminal (and never with `NO_COLOR`).

use std::io::{IsTerminal, Write};

use anyhow::bail;

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub color: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        let color = !json
            && std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Output { json, color }
    }

    /// Prints one JSON document (pretty).
    pub fn json(&self, value: &serde_json::Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        );
    }

    /// Prints one JSON object on one line (the `tail` commands).
    pub fn json_line(&self, value: &serde_json::Value) {
        println!("{value}");
        let _ = std::io::stdout().flush();
    }

    /// `text` in the colour of an execution status (or a state word) on a terminal.
    pub fn status(&self, text: &str) -> String {
        if !self.color {
            return text.to_owned();
        }
        let code = match text {
            "COMPLETED" | "held" | "valid" | "active" | "yes" => "32",
            "FAILED" | "invalid" | "rejected" => "31",
            "RUNNING" | "PENDING" | "started" => "33",
            "SKIPPED" | "expired" | "inactive" | "no" => "2",
            _ => return text.to_owned(),
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    pub fn bold(&self, text: &str) -> String {
        if self.color {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// Prints rows under a header, columns aligned on their widest cell (colour codes excluded).
    pub fn table(&self, headers: &[&str], rows: &[Vec<String>]) {
        let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
        for row in rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(visible_len(cell));
                }
            }
        }
        let line = |cells: Vec<String>| {
            let mut out = String::new();
            let last = cells.len().saturating_sub(1);
            for (i, cell) in cells.iter().enumerate() {
                out.push_str(cell);
                if i < last {
                    let pad = widths.get(i).copied().unwrap_or(0) - visible_len(cell);
                    out.push_str(&" ".repeat(pad + 2));
                }
            }
            out
        };
        let header = line(headers.iter().map(|h| (*h).to_owned()).collect());
        println!("{}", self.bold(&header));
        for row in rows {
            println!("{}", line(row.clone()));
        }
    }
}

/// Characters shown, without ANSI colour sequences.
fn visible_len(s: &str) -> usize {
    let mut n = 0;
    let mut in_escape = false;
    for c in s.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

/// `text` on one line: newlines and runs of blanks become one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An error and its sources on one line, without the SDK's debug dumps.
pub fn short_error(e: &(dyn std::error::Error + 'static)) -> String {
    one_line(&tradeflow_core::error::error_chain(e))
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| secs.to_string())
}

/// Asks for confirmation on a terminal; without one, `--yes` is required.
pub fn confirm(yes: bool, question: &str) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{question}: refusing without --yes (stdin is not a terminal to ask on)");
    }
    eprint!("{question}? Type 'yes' to continue: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        bail!("cancelled: nothing was changed");
    }
    Ok(())
}

/// `s` cut to `max` characters with `…`.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

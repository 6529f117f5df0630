//! Configuration read from the environment, every problem reported at once.

/// A configuration problem; all of them are reported together.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {}", .problems.join("; "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// Reads settings through a lookup function (the environment in `main`, a map in tests) and
/// collects every problem instead of stopping at the first.
pub struct Settings<F: Fn(&str) -> Option<String>> {
    lookup: F,
    problems: Vec<String>,
}

impl<F: Fn(&str) -> Option<String>> Settings<F> {
    pub fn new(lookup: F) -> Self {
        Settings {
            lookup,
            problems: Vec::new(),
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&mut self, name: &str) -> String {
        match self.get(name) {
            Some(v) => v,
            None => {
                self.problems.push(format!("{name} is not set"));
                String::new()
            }
        }
    }

    pub fn optional(&mut self, name: &str) -> Option<String> {
        self.get(name)
    }

    pub fn or(&mut self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    /// Parses `name` with `parse`, or uses `default` when unset.
    pub fn parsed<T, E: std::fmt::Display>(
        &mut self,
        name: &str,
        default: T,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> T {
        match self.get(name) {
            None => default,
            Some(raw) => match parse(raw.trim()) {
                Ok(v) => v,
                Err(e) => {
                    self.problems.push(format!("{name}={raw:?}: {e}"));
                    default
                }
            },
        }
    }

    /// A comma-separated list, each item parsed.
    pub fn list<T, E: std::fmt::Display>(
        &mut self,
        name: &str,
        default: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Vec<T> {
        let raw = self.or(name, default);
        let mut out = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match parse(item) {
                Ok(v) => out.push(v),
                Err(e) => self.problems.push(format!("{name}: {item:?}: {e}")),
            }
        }
        if out.is_empty() && !raw.trim().is_empty() {
            self.problems.push(format!("{name} has no valid entries"));
        }
        out
    }

    pub fn problem(&mut self, text: String) {
        self.problems.push(text);
    }

    pub fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }
}

/// Where candles come from, chosen by `MARKET_DATA`.
#[derive(Debug, Clone, PartialEq)]
pub enum MarketSource {
    /// `MARKET_DATA=synthetic` (default): the deterministic feed, seeded by `SYNTHETIC_SEED`.
    Synthetic { seed: u64 },
    /// `MARKET_DATA=csv` with `MARKET_DATA_CSV_DIR`: replay of `<TICKER>_<TIMEFRAME>.csv` files.
    Csv { dir: String },
}

impl MarketSource {
    pub fn from_settings<F: Fn(&str) -> Option<String>>(s: &mut Settings<F>) -> Self {
        let kind = s.or("MARKET_DATA", "synthetic");
        match kind.as_str() {
            "synthetic" => MarketSource::Synthetic {
                seed: s.parsed("SYNTHETIC_SEED", 42u64, str::parse::<u64>),
            },
            "csv" => MarketSource::Csv {
                dir: s.required("MARKET_DATA_CSV_DIR"),
            },
            other => {
                s.problem(format!("MARKET_DATA={other:?}: expected synthetic or csv"));
                MarketSource::Synthetic { seed: 42 }
            }
        }
    }

    /// Builds the source (a CSV directory is read and validated here, once per cold start).
    pub fn build(
        &self,
    ) -> Result<
        std::sync::Arc<dyn tradeflow_core::market::MarketData>,
        tradeflow_core::market::MarketDataError,
    > {
        use tradeflow_core::market::{CsvReplay, SyntheticFeed};
        Ok(match self {
            MarketSource::Synthetic { seed } => std::sync::Arc::new(SyntheticFeed { seed: *seed }),
            MarketSource::Csv { dir } => std::sync::Arc::new(CsvReplay::from_dir(dir)?),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn settings_report_every_problem_at_once() {
        let env: HashMap<&str, &str> = HashMap::from([("N", "x"), ("L", "1,y,3")]);
        let mut s = Settings::new(|k| env.get(k).map(|v| (*v).to_owned()));
        let _ = s.required("MISSING");
        let _ = s.parsed("N", 1u32, str::parse::<u32>);
        let l = s.list("L", "", str::parse::<u32>);
        assert_eq!(l, vec![1, 3]);
        let err = s.finish(()).unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
        assert!(err.to_string().contains("MISSING is not set"));
    }
}

//! Configuration read from the environment, every problem reported at once.

use tradeflow_core::market::{AlpacaSettings, ApiKeySource};

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
    /// `MARKET_DATA=alpaca`: Alpaca Market Data over HTTPS (`tradeflow_aws::market`), with
    /// `ALPACA_DATA_URL` (default `https://data.alpaca.markets`), `ALPACA_STOCK_FEED` (`iex`,
    /// the free plan's, or `sip`, `delayed_sip`, `otc`), `ALPACA_REQUESTS_PER_MINUTE` (200) and
    /// the key from `ALPACA_CREDENTIALS_SECRET_ARN` (a Secrets Manager secret) or else
    /// `APCA_API_KEY_ID` and `APCA_API_SECRET_KEY`.
    Alpaca(AlpacaSettings),
}

/// Alpaca's stock feeds.
const STOCK_FEEDS: [&str; 4] = ["iex", "sip", "delayed_sip", "otc"];

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
            "alpaca" => {
                let data_url = s.or("ALPACA_DATA_URL", "https://data.alpaca.markets");
                if !(data_url.starts_with("https://") || data_url.starts_with("http://")) {
                    s.problem(format!(
                        "ALPACA_DATA_URL={data_url:?}: expected an http:// or https:// URL"
                    ));
                }
                let stock_feed = s.or("ALPACA_STOCK_FEED", "iex");
                if !STOCK_FEEDS.contains(&stock_feed.as_str()) {
                    s.problem(format!(
                        "ALPACA_STOCK_FEED={stock_feed:?}: expected one of {}",
                        STOCK_FEEDS.join(", ")
                    ));
                }
                let requests_per_minute = s.parsed("ALPACA_REQUESTS_PER_MINUTE", 200u32, |raw| {
                    match raw.parse::<u32>() {
                        Ok(0) => Err("must be at least 1".to_owned()),
                        Ok(n) => Ok(n),
                        Err(e) => Err(e.to_string()),
                    }
                });
                let key = match s.optional("ALPACA_CREDENTIALS_SECRET_ARN") {
                    Some(arn) => {
                        if !arn.starts_with("arn:") {
                            s.problem(format!(
                                "ALPACA_CREDENTIALS_SECRET_ARN={arn:?}: expected a Secrets \
                                 Manager secret ARN"
                            ));
                        }
                        ApiKeySource::SecretArn(arn)
                    }
                    None => ApiKeySource::Env {
                        key_id: s.required("APCA_API_KEY_ID"),
                        secret_key: s.required("APCA_API_SECRET_KEY"),
                    },
                };
                MarketSource::Alpaca(AlpacaSettings {
                    data_url,
                    stock_feed,
                    requests_per_minute,
                    key,
                })
            }
            other => {
                s.problem(format!(
                    "MARKET_DATA={other:?}: expected synthetic, csv or alpaca"
                ));
                MarketSource::Synthetic { seed: 42 }
            }
        }
    }

    /// Builds a source that needs no AWS client (a CSV directory is read and validated here,
    /// once per cold start). [`MarketSource::Alpaca`] is built by the function with
    /// `tradeflow_aws::market::AlpacaMarketData::from_settings` (its key may come from Secrets
    /// Manager); here it is an error.
    pub fn build(
        &self,
    ) -> Result<
        std::sync::Arc<dyn tradeflow_core::market::MarketData>,
        tradeflow_core::market::MarketDataError,
    > {
        use tradeflow_core::market::{CsvReplay, MarketDataError, SyntheticFeed};
        Ok(match self {
            MarketSource::Synthetic { seed } => std::sync::Arc::new(SyntheticFeed { seed: *seed }),
            MarketSource::Csv { dir } => std::sync::Arc::new(CsvReplay::from_dir(dir)?),
            MarketSource::Alpaca(_) => {
                return Err(MarketDataError::Provider {
                    provider: "alpaca",
                    series: "*".to_owned(),
                    reason: "built with tradeflow_aws::market::AlpacaMarketData::from_settings"
                        .to_owned(),
                    retryable: false,
                });
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_alpaca_source_takes_its_key_from_the_environment_or_a_secret() {
        let parse = |pairs: &[(&str, &str)]| {
            let env: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let mut s = Settings::new(|k| env.get(k).cloned());
            let source = MarketSource::from_settings(&mut s);
            s.finish(source)
        };
        let env_key = parse(&[
            ("MARKET_DATA", "alpaca"),
            ("APCA_API_KEY_ID", "PK1"),
            ("APCA_API_SECRET_KEY", "sk"),
        ])
        .unwrap();
        assert_eq!(
            env_key,
            MarketSource::Alpaca(AlpacaSettings {
                data_url: "https://data.alpaca.markets".into(),
                stock_feed: "iex".into(),
                requests_per_minute: 200,
                key: ApiKeySource::Env {
                    key_id: "PK1".into(),
                    secret_key: "sk".into()
                },
            })
        );
        assert!(
            !format!("{env_key:?}").contains("sk\""),
            "the secret is never printed"
        );
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:alpaca-AbCdEf";
        let secret = parse(&[
            ("MARKET_DATA", "alpaca"),
            ("ALPACA_CREDENTIALS_SECRET_ARN", arn),
            ("ALPACA_STOCK_FEED", "sip"),
            ("ALPACA_REQUESTS_PER_MINUTE", "10000"),
            ("ALPACA_DATA_URL", "http://127.0.0.1:9"),
        ])
        .unwrap();
        let MarketSource::Alpaca(a) = &secret else {
            panic!("{secret:?}")
        };
        assert_eq!(a.key, ApiKeySource::SecretArn(arn.into()));
        assert_eq!(
            (a.stock_feed.as_str(), a.requests_per_minute),
            ("sip", 10_000)
        );
        assert!(secret.build().is_err(), "built by the function, not here");
        let err = parse(&[
            ("MARKET_DATA", "alpaca"),
            ("ALPACA_STOCK_FEED", "nasdaq"),
            ("ALPACA_REQUESTS_PER_MINUTE", "0"),
            ("ALPACA_DATA_URL", "data.alpaca.markets"),
        ])
        .unwrap_err()
        .to_string();
        for needle in [
            "APCA_API_KEY_ID is not set",
            "APCA_API_SECRET_KEY is not set",
            "ALPACA_STOCK_FEED",
            "ALPACA_REQUESTS_PER_MINUTE",
            "ALPACA_DATA_URL",
        ] {
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
        let err = parse(&[("MARKET_DATA", "polygon")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("synthetic, csv or alpaca"), "{err}");
    }

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

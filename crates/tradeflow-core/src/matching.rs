//! Matching signals to pipelines, with the reference system's semantics and its multi-ticker leak
//! fixed.
//!
//! A pipeline matches a signal when the signal's tickers and the pipeline's tickers intersect, and
//! its subscriptions are empty (every type) or one of them has the signal's type, the same
//! timeframe (compared only when both sides have one) and a `min_confidence` no higher than the
//! ticker's confidence. Unlike the old system, only tickers that are in the pipeline **and** meet
//! the confidence fan out: one [`Match`] per (pipeline, ticker).
//!
//! Lookup goes through an index by (ticker, signal type), plus an index by ticker for pipelines
//! that take every type, so a signal touches only the pipelines that can match it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::pipeline::Pipeline;
use crate::signal::Signal;
use crate::vocab::{Direction, SignalType, Ticker};

/// One (pipeline, ticker) the signal triggers.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub pipeline: Arc<Pipeline>,
    pub ticker: Ticker,
    pub confidence: f64,
    pub direction: Direction,
}

/// The cached, indexed set of active signal-triggered pipelines.
#[derive(Debug, Default)]
pub struct PipelineIndex {
    pipelines: Vec<Arc<Pipeline>>,
    by_ticker_and_type: HashMap<(Ticker, SignalType), Vec<usize>>,
    any_type_by_ticker: HashMap<Ticker, Vec<usize>>,
}

impl PipelineIndex {
    /// Builds the index from pipelines; inactive or non-signal pipelines are left out.
    pub fn new(pipelines: impl IntoIterator<Item = Pipeline>) -> Self {
        let mut index = PipelineIndex::default();
        for pipeline in pipelines {
            if !pipeline.is_signal_triggered() {
                continue;
            }
            let slot = index.pipelines.len();
            let tickers: BTreeSet<&Ticker> = pipeline.tickers.iter().collect();
            let types: BTreeSet<&SignalType> = pipeline
                .signal_subscriptions
                .iter()
                .map(|s| &s.signal_type)
                .collect();
            for ticker in tickers {
                if types.is_empty() {
                    index
                        .any_type_by_ticker
                        .entry(ticker.clone())
                        .or_default()
                        .push(slot);
                }
                for signal_type in &types {
                    index
                        .by_ticker_and_type
                        .entry((ticker.clone(), (*signal_type).clone()))
                        .or_default()
                        .push(slot);
                }
            }
            index.pipelines.push(Arc::new(pipeline));
        }
        index
    }

    pub fn len(&self) -> usize {
        self.pipelines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pipelines.is_empty()
    }

    /// Every (pipeline, ticker) the signal triggers, in the signal's ticker order, then pipeline
    /// order. Deterministic.
    pub fn matches(&self, signal: &Signal) -> Vec<Match> {
        let mut out = Vec::new();
        for ts in &signal.tickers {
            let typed = self
                .by_ticker_and_type
                .get(&(ts.ticker.clone(), signal.signal_type.clone()));
            let any = self.any_type_by_ticker.get(&ts.ticker);
            let mut slots: Vec<usize> = typed
                .into_iter()
                .chain(any)
                .flat_map(|v| v.iter().copied())
                .collect();
            slots.sort_unstable();
            slots.dedup();
            for slot in slots {
                let Some(pipeline) = self.pipelines.get(slot) else {
                    continue;
                };
                let Some(threshold) = confidence_threshold(pipeline, signal) else {
                    continue;
                };
                if ts.confidence.value() >= threshold {
                    out.push(Match {
                        pipeline: Arc::clone(pipeline),
                        ticker: ts.ticker.clone(),
                        confidence: ts.confidence.value(),
                        direction: ts.signal,
                    });
                }
            }
        }
        out
    }
}

/// The lowest confidence at which `signal` triggers `pipeline`, or `None` when no subscription
/// accepts its type and timeframe. Empty subscriptions accept everything at 0.
pub fn confidence_threshold(pipeline: &Pipeline, signal: &Signal) -> Option<f64> {
    if pipeline.signal_subscriptions.is_empty() {
        return Some(0.0);
    }
    pipeline
        .signal_subscriptions
        .iter()
        .filter(|s| s.signal_type == signal.signal_type)
        .filter(|s| match (s.timeframe, signal.timeframe()) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        })
        .map(|s| s.min_confidence.unwrap_or(0.0))
        .reduce(f64::min)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pipeline(id: &str, tickers: &[&str], subs: serde_json::Value) -> Pipeline {
        crate::fakes::fixtures::pipeline(id, "u", tickers, subs)
    }

    fn signal(signal_type: &str, timeframe: Option<&str>, tickers: &[(&str, f64)]) -> Signal {
        let mut metadata = json!({});
        if let Some(tf) = timeframe {
            metadata["timeframe"] = json!(tf);
        }
        serde_json::from_value(json!({
            "signal_id": "s1", "signal_type": signal_type, "source": "test", "timestamp": 1_700_000_000,
            "tickers": tickers.iter().map(|(t, c)| json!({"ticker": t, "signal": "BULLISH", "confidence": c, "reasoning": null})).collect::<Vec<_>>(),
            "metadata": metadata
        }))
        .unwrap()
    }

    fn fanout(index: &PipelineIndex, s: &Signal) -> Vec<String> {
        index
            .matches(s)
            .iter()
            .map(|m| format!("{}:{}", m.pipeline.pipeline_id, m.ticker))
            .collect()
    }

    /// Every rule of the reference document, one row each.
    #[test]
    fn matching_rules_table() {
        let rsi = json!([{"signal_type": "rsi_oversold"}]);
        let rsi_5 = json!([{"signal_type": "rsi_oversold", "timeframe": "5"}]);
        let rsi_min70 = json!([{"signal_type": "rsi_oversold", "min_confidence": 70}]);
        let cases: Vec<(&str, Pipeline, Signal, Vec<&str>)> = vec![
            (
                "no common ticker: no match",
                pipeline("p", &["MSFT"], json!([])),
                signal("rsi_oversold", None, &[("AAPL", 90.0)]),
                vec![],
            ),
            (
                "empty subscriptions: every type matches",
                pipeline("p", &["AAPL"], json!([])),
                signal("golden_cross", Some("D"), &[("AAPL", 10.0)]),
                vec!["p:AAPL"],
            ),
            (
                "same type matches",
                pipeline("p", &["AAPL"], rsi.clone()),
                signal("rsi_oversold", Some("5"), &[("AAPL", 50.0)]),
                vec!["p:AAPL"],
            ),
            (
                "other type does not match",
                pipeline("p", &["AAPL"], rsi.clone()),
                signal("macd_bullish", Some("5"), &[("AAPL", 50.0)]),
                vec![],
            ),
            (
                "same timeframe matches",
                pipeline("p", &["AAPL"], rsi_5.clone()),
                signal("rsi_oversold", Some("5"), &[("AAPL", 50.0)]),
                vec!["p:AAPL"],
            ),
            (
                "different timeframe does not match",
                pipeline("p", &["AAPL"], rsi_5.clone()),
                signal("rsi_oversold", Some("15"), &[("AAPL", 50.0)]),
                vec![],
            ),
            (
                "timeframe compared only when the signal has one",
                pipeline("p", &["AAPL"], rsi_5.clone()),
                signal("rsi_oversold", None, &[("AAPL", 50.0)]),
                vec!["p:AAPL"],
            ),
            (
                "timeframe compared only when the subscription has one",
                pipeline("p", &["AAPL"], rsi.clone()),
                signal("rsi_oversold", Some("240"), &[("AAPL", 50.0)]),
                vec!["p:AAPL"],
            ),
            (
                "confidence equal to min_confidence matches",
                pipeline("p", &["AAPL"], rsi_min70.clone()),
                signal("rsi_oversold", None, &[("AAPL", 70.0)]),
                vec!["p:AAPL"],
            ),
            (
                "confidence below min_confidence does not match",
                pipeline("p", &["AAPL"], rsi_min70.clone()),
                signal("rsi_oversold", None, &[("AAPL", 69.9)]),
                vec![],
            ),
            (
                "any one subscription suffices",
                pipeline(
                    "p",
                    &["AAPL"],
                    json!([{"signal_type": "macd_bullish"}, {"signal_type": "rsi_oversold", "timeframe": "5", "min_confidence": 60}]),
                ),
                signal("rsi_oversold", Some("5"), &[("AAPL", 65.0)]),
                vec!["p:AAPL"],
            ),
            (
                "the most permissive matching subscription sets the threshold",
                pipeline(
                    "p",
                    &["AAPL"],
                    json!([{"signal_type": "rsi_oversold", "min_confidence": 90}, {"signal_type": "rsi_oversold", "min_confidence": 50}]),
                ),
                signal("rsi_oversold", None, &[("AAPL", 60.0)]),
                vec!["p:AAPL"],
            ),
            (
                "a subscription of another timeframe does not lower the threshold",
                pipeline(
                    "p",
                    &["AAPL"],
                    json!([{"signal_type": "rsi_oversold", "timeframe": "D", "min_confidence": 10}, {"signal_type": "rsi_oversold", "timeframe": "5", "min_confidence": 80}]),
                ),
                signal("rsi_oversold", Some("5"), &[("AAPL", 60.0)]),
                vec![],
            ),
            // The old system's leak: a multi-ticker signal fanned out every one of its tickers once
            // the pipeline matched. Only tickers in the pipeline fan out here...
            (
                "fixed leak: tickers outside the pipeline do not fan out",
                pipeline("p", &["AAPL", "NVDA"], rsi.clone()),
                signal(
                    "rsi_oversold",
                    None,
                    &[("AAPL", 80.0), ("TSLA", 80.0), ("NVDA", 75.0)],
                ),
                vec!["p:AAPL", "p:NVDA"],
            ),
            // ...and only those at or above min_confidence (the old check used the highest one).
            (
                "fixed leak: tickers below min_confidence do not fan out",
                pipeline("p", &["AAPL", "NVDA"], rsi_min70.clone()),
                signal("rsi_oversold", None, &[("AAPL", 80.0), ("NVDA", 60.0)]),
                vec!["p:AAPL"],
            ),
            (
                "inactive pipelines are not indexed",
                {
                    let mut p = pipeline("p", &["AAPL"], json!([]));
                    p.is_active = false;
                    p
                },
                signal("rsi_oversold", None, &[("AAPL", 80.0)]),
                vec![],
            ),
            (
                "non-signal pipelines are not indexed",
                {
                    let mut p = pipeline("p", &["AAPL"], json!([]));
                    p.trigger_mode = crate::pipeline::TriggerMode::Periodic;
                    p
                },
                signal("rsi_oversold", None, &[("AAPL", 80.0)]),
                vec![],
            ),
        ];
        for (name, p, s, want) in cases {
            let index = PipelineIndex::new([p]);
            assert_eq!(fanout(&index, &s), want, "{name}");
        }
    }

    #[test]
    fn index_returns_each_pipeline_ticker_pair_once_in_order() {
        let index = PipelineIndex::new([
            pipeline(
                "a",
                &["AAPL", "MSFT"],
                json!([{"signal_type": "rsi_oversold"}, {"signal_type": "rsi_oversold", "timeframe": "5"}]),
            ),
            pipeline("b", &["MSFT"], json!([])),
            pipeline("c", &["TSLA"], json!([])),
        ]);
        assert_eq!(index.len(), 3);
        let s = signal("rsi_oversold", Some("5"), &[("MSFT", 70.0), ("AAPL", 70.0)]);
        assert_eq!(fanout(&index, &s), vec!["a:MSFT", "b:MSFT", "a:AAPL"]);
    }
}

//! Matching signals to pipelines, with the reference system's semantics and its multi-ticker leak
//! fixed.
//!
//! A pipeline matches a signal when the signal's tickers and the pipeline's tickers intersect, and
//! its subscriptions are empty (every type) or one of them has the signal's type, the same
//! timeframe (compared only when both sides have one) and a `min_confidence` no higher than the
//! ticker's confidence. Unlike the old system, only tickers that are in the pipeline **and** meet
//! the confidence fan out: one [`Match`] per (pipeline, ticker).
//!
//! Layout, for speed at 100,000 pipelines (see BENCHMARKS.md): every (pipeline, ticker) pair of
//! the index has a dense [`PairId`], numbered in pipeline order. Tickers and signal types are
//! interned to small integers; the key (ticker, signal type) leads to a compact list of postings
//! (pair, filter), where the filter (optional timeframe, minimum confidence) is an index into a
//! small table of distinct filters. So a lookup scans one contiguous list, never re-checks the
//! signal type, never touches a pipeline, and allocates nothing. Pipelines that take every type
//! have a list of pairs per ticker. Both lists are sorted by pair, that is by pipeline, and merged.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::ids::ExecutionIdPart;
use crate::pipeline::Pipeline;
use crate::signal::Signal;
use crate::vocab::{Direction, SignalType, Ticker, Timeframe};

/// One (pipeline, ticker) the signal triggers.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub pipeline: Arc<Pipeline>,
    pub ticker: Ticker,
    pub confidence: f64,
    pub direction: Direction,
}

/// One (pipeline, ticker) pair of a [`PipelineIndex`]: the dispatcher's unit of execution (and of
/// its lease). Dense, from 0 to [`PipelineIndex::pair_count`], in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairId(u32);

impl PairId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A match as indices, without cloning anything: the pair, and the position of the ticker in
/// `signal.tickers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub pair: PairId,
    /// Position of the ticker in `signal.tickers` (a signal fits one 256 KB message).
    pub ticker: u32,
    /// The pair's pipeline's slot ([`PipelineIndex::slot`]), carried by the postings so a fan-out
    /// reaches its pipeline's data in one read.
    slot: u32,
}

/// A subscription's filters: its timeframe (if any) and minimum confidence (0 when none: every
/// valid confidence is at least 0).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Filter {
    timeframe: Option<Timeframe>,
    min_confidence: f64,
}

/// Index of [`Filter`] `{ timeframe: None, min_confidence: 0 }`, which accepts everything.
const NO_FILTER: u32 = 0;

/// A pipeline subscribed to a (ticker, signal type): its pair and the subscription's filter.
#[derive(Debug, Clone, Copy)]
struct Posting {
    pair: u32,
    slot: u32,
    filter: u32,
}

/// What a fan-out needs of an indexed pipeline besides its ids: the pipeline's half of its
/// execution ids ([`crate::ids::pipeline_part`], hashed once here rather than once per
/// execution) and its maximum runtime (the lease's length). At 100,000 pipelines a signal fans
/// out to thousands of pipelines scattered over megabytes; aligned to 32 bytes, each is one
/// cache line to read.
#[derive(Debug, Clone, Copy)]
#[repr(align(32))]
pub struct Slot {
    pub execution_part: ExecutionIdPart,
    pub max_runtime_secs: u32,
}

/// The cached, indexed set of active signal-triggered pipelines.
#[derive(Debug, Default)]
pub struct PipelineIndex {
    /// The pipelines, in the order given (less the ones left out), and each one's [`Slot`].
    pipelines: Vec<Arc<Pipeline>>,
    slots: Vec<Slot>,
    /// Slot in `slots` of each pair.
    pair_pipeline: Vec<u32>,
    /// Interned tickers and signal types.
    ticker_ids: HashMap<Ticker, u32>,
    type_ids: HashMap<SignalType, u32>,
    /// Distinct filters; [`NO_FILTER`] first.
    filters: Vec<Filter>,
    /// Postings by (ticker id, type id), sorted by pair; a pipeline with several subscriptions
    /// of one type has adjacent postings of the same pair.
    typed: HashMap<(u32, u32), Box<[Posting]>>,
    /// (pair, slot) of the pipelines that take every signal type, by ticker id, sorted.
    any_type: Vec<Box<[(u32, u32)]>>,
}

/// Bit set of [`PairId`]s: de-duplicates (pipeline, ticker) fan-outs without hashing or
/// allocating per entry. From [`PipelineIndex::pair_set`].
#[derive(Debug, Clone)]
pub struct PairSet {
    words: Vec<u64>,
}

impl PairSet {
    /// Adds `pair`; `true` when it was not in the set yet.
    pub fn insert(&mut self, pair: PairId) -> bool {
        let (word, bit) = (pair.index() / 64, 1u64 << (pair.index() % 64));
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let fresh = self.words[word] & bit == 0;
        self.words[word] |= bit;
        fresh
    }
}

impl PipelineIndex {
    /// Builds the index from pipelines; inactive or non-signal pipelines are left out, and so is a
    /// pipeline whose id an earlier one has (ids are the pipelines table's key, so unique there).
    pub fn new(pipelines: impl IntoIterator<Item = Pipeline>) -> Self {
        let mut pipelines: Vec<Pipeline> = pipelines
            .into_iter()
            .filter(Pipeline::is_signal_triggered)
            .collect();
        {
            let mut ids: HashSet<&str> = HashSet::with_capacity(pipelines.len());
            let keep: Vec<bool> = pipelines
                .iter()
                .map(|p| ids.insert(p.pipeline_id.as_str()))
                .collect();
            if keep.contains(&false) {
                let mut keep = keep.into_iter();
                pipelines.retain(|_| keep.next().unwrap_or(false));
            }
        }
        let mut index = PipelineIndex {
            filters: vec![Filter {
                timeframe: None,
                min_confidence: 0.0,
            }],
            ..PipelineIndex::default()
        };
        let mut filter_ids: HashMap<(Option<Timeframe>, u64), u32> = HashMap::new();
        filter_ids.insert((None, 0.0f64.to_bits()), NO_FILTER);
        let mut typed: HashMap<(u32, u32), Vec<Posting>> = HashMap::new();
        let mut any_type: Vec<Vec<(u32, u32)>> = Vec::new();
        let mut subs: Vec<(u32, u32)> = Vec::new();
        for pipeline in pipelines {
            let slot = index.slots.len() as u32;
            subs.clear();
            for s in &pipeline.signal_subscriptions {
                let next = index.type_ids.len() as u32;
                let type_id = *index.type_ids.entry(s.signal_type.clone()).or_insert(next);
                let filter = Filter {
                    timeframe: s.timeframe,
                    // `-0.0` and `0.0` accept the same confidences: one filter.
                    min_confidence: s.min_confidence.unwrap_or(0.0) + 0.0,
                };
                let next = index.filters.len() as u32;
                let filter_id = *filter_ids
                    .entry((filter.timeframe, filter.min_confidence.to_bits()))
                    .or_insert(next);
                if filter_id == next {
                    index.filters.push(filter);
                }
                subs.push((type_id, filter_id));
            }
            subs.sort_unstable();
            subs.dedup();
            let mut tickers: Vec<&Ticker> = pipeline.tickers.iter().collect();
            tickers.sort_unstable();
            tickers.dedup();
            for ticker in tickers {
                let pair = index.pair_pipeline.len() as u32;
                index.pair_pipeline.push(slot);
                let next = index.ticker_ids.len() as u32;
                let ticker_id = *index.ticker_ids.entry(ticker.clone()).or_insert(next);
                if ticker_id == next {
                    any_type.push(Vec::new());
                }
                if subs.is_empty() {
                    if let Some(list) = any_type.get_mut(ticker_id as usize) {
                        list.push((pair, slot));
                    }
                }
                for &(type_id, filter) in &subs {
                    typed
                        .entry((ticker_id, type_id))
                        .or_default()
                        .push(Posting { pair, slot, filter });
                }
            }
            index.slots.push(Slot {
                execution_part: crate::ids::pipeline_part(&pipeline.pipeline_id),
                max_runtime_secs: pipeline.max_runtime_secs,
            });
            index.pipelines.push(Arc::new(pipeline));
        }
        index.typed = typed
            .into_iter()
            .map(|(k, v)| (k, v.into_boxed_slice()))
            .collect();
        index.any_type = any_type.into_iter().map(Vec::into_boxed_slice).collect();
        index
    }

    /// Number of pipelines indexed.
    pub fn len(&self) -> usize {
        self.pipelines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pipelines.is_empty()
    }

    /// Number of (pipeline, ticker) pairs: [`PairId`]s are below it.
    pub fn pair_count(&self) -> usize {
        self.pair_pipeline.len()
    }

    /// An empty [`PairSet`] sized for this index.
    pub fn pair_set(&self) -> PairSet {
        PairSet {
            words: vec![0; self.pair_count().div_ceil(64)],
        }
    }

    /// The pipeline of `pair` (`None` only for a pair of another index).
    pub fn pipeline(&self, pair: PairId) -> Option<&Arc<Pipeline>> {
        let slot = *self.pair_pipeline.get(pair.index())?;
        self.pipelines.get(slot as usize)
    }

    /// The [`Slot`] of `hit`'s pipeline (`None` only for a hit of another index).
    pub fn slot(&self, hit: Hit) -> Option<&Slot> {
        self.slots.get(hit.slot as usize)
    }

    /// The pipeline of `hit` (`None` only for a hit of another index). Reads only the index's
    /// own length: what is read of the pipeline is read where it is used.
    pub fn hit_pipeline(&self, hit: Hit) -> Option<&Arc<Pipeline>> {
        self.pipelines.get(hit.slot as usize)
    }

    /// The pipeline at `slot` (see [`PipelineIndex::pipeline_slot`]).
    pub fn pipeline_at(&self, slot: usize) -> Option<&Arc<Pipeline>> {
        self.pipelines.get(slot)
    }

    /// The position of `pair`'s pipeline in the index (the order pipelines were given in, less the
    /// ones left out), `None` only for a pair of another index.
    pub fn pipeline_slot(&self, pair: PairId) -> Option<usize> {
        self.pair_pipeline.get(pair.index()).map(|&s| s as usize)
    }

    /// Calls `f` with every (pipeline, ticker) the signal triggers, in the signal's ticker order,
    /// then pipeline order; each once. Deterministic; allocates nothing.
    pub fn for_each_hit(&self, signal: &Signal, mut f: impl FnMut(Hit)) {
        let type_id = self.type_ids.get(&signal.signal_type).copied();
        let timeframe = signal.timeframe();
        for (position, ts) in signal.tickers.iter().enumerate() {
            let Some(&ticker_id) = self.ticker_ids.get(&ts.ticker) else {
                continue;
            };
            let typed: &[Posting] = type_id
                .and_then(|t| self.typed.get(&(ticker_id, t)))
                .map_or(&[], |v| v);
            let any: &[(u32, u32)] = self.any_type.get(ticker_id as usize).map_or(&[], |v| v);
            let confidence = ts.confidence.value();
            let hit = |(pair, slot): (u32, u32)| Hit {
                pair: PairId(pair),
                ticker: position as u32,
                slot,
            };
            // Merge the two sorted lists (their pipelines are disjoint: a pipeline with
            // subscriptions is only in `typed`, one without only in `any`).
            let mut any = any.iter().copied().peekable();
            let mut i = 0;
            while let Some(first) = typed.get(i) {
                let (pair, slot) = (first.pair, first.slot);
                let mut accepted = false;
                while let Some(p) = typed.get(i)
                    && p.pair == pair
                {
                    accepted = accepted || self.accepts(p.filter, timeframe, confidence);
                    i += 1;
                }
                while let Some(&a) = any.peek()
                    && a.0 < pair
                {
                    f(hit(a));
                    any.next();
                }
                if accepted {
                    f(hit((pair, slot)));
                }
            }
            for a in any {
                f(hit(a));
            }
        }
    }

    /// Whether a signal of `timeframe` and a ticker of `confidence` pass filter `filter`.
    #[inline]
    fn accepts(&self, filter: u32, timeframe: Option<Timeframe>, confidence: f64) -> bool {
        if filter == NO_FILTER {
            return true;
        }
        let Some(f) = self.filters.get(filter as usize) else {
            return false;
        };
        let timeframe_ok = match (f.timeframe, timeframe) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        };
        timeframe_ok && confidence >= f.min_confidence
    }

    /// Every (pipeline, ticker) the signal triggers, in the signal's ticker order, then pipeline
    /// order. Deterministic. Clones a ticker and a pipeline handle per match: the dispatcher uses
    /// [`PipelineIndex::for_each_hit`] instead.
    pub fn matches(&self, signal: &Signal) -> Vec<Match> {
        let mut out = Vec::new();
        self.for_each_hit(signal, |hit| {
            let (Some(pipeline), Some(ts)) = (
                self.pipeline(hit.pair),
                signal.tickers.get(hit.ticker as usize),
            ) else {
                return;
            };
            out.push(Match {
                pipeline: Arc::clone(pipeline),
                ticker: ts.ticker.clone(),
                confidence: ts.confidence.value(),
                direction: ts.signal,
            });
        });
        out
    }
}

/// The lowest confidence at which `signal` triggers `pipeline`, or `None` when no subscription
/// accepts its type and timeframe. Empty subscriptions accept everything at 0. The rule written
/// plainly, one pipeline at a time: the index is tested against it.
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

    /// Several subscriptions of one type with other filters, duplicate tickers and a duplicate
    /// pipeline id: each (pipeline, ticker) once, the first pipeline of an id kept.
    #[test]
    fn duplicates_collapse_to_one_pair() {
        let subs = json!([
            {"signal_type": "rsi_oversold", "timeframe": "D", "min_confidence": 10},
            {"signal_type": "rsi_oversold", "timeframe": "5", "min_confidence": 80},
            {"signal_type": "rsi_oversold", "timeframe": "5", "min_confidence": 80},
            {"signal_type": "macd_bullish"}
        ]);
        let index = PipelineIndex::new([
            pipeline("a", &["AAPL", "AAPL", "MSFT"], subs),
            pipeline("a", &["TSLA"], json!([])),
        ]);
        assert_eq!((index.len(), index.pair_count()), (1, 2));
        let s = signal("rsi_oversold", None, &[("AAPL", 50.0), ("TSLA", 90.0)]);
        assert_eq!(fanout(&index, &s), vec!["a:AAPL"]);
        let s = signal("rsi_oversold", Some("5"), &[("AAPL", 50.0)]);
        assert_eq!(fanout(&index, &s), Vec::<String>::new());
        let mut seen = index.pair_set();
        let pairs: Vec<PairId> = {
            let mut v = Vec::new();
            index.for_each_hit(
                &signal("macd_bullish", None, &[("MSFT", 1.0), ("AAPL", 1.0)]),
                |h| v.push(h.pair),
            );
            v
        };
        assert_eq!(pairs.len(), 2);
        assert!(pairs.iter().all(|p| seen.insert(*p)));
        assert!(!seen.insert(pairs[0]));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const TICKERS: [&str; 5] = ["AAPL", "MSFT", "NVDA", "TSLA", "AMD"];
        const TYPES: [&str; 4] = [
            "rsi_oversold",
            "golden_cross",
            "macd_bullish",
            "volume_spike",
        ];
        const TIMEFRAMES: [&str; 3] = ["5", "15", "D"];
        const CONFIDENCES: [f64; 6] = [0.0, 49.9, 50.0, 70.0, 70.5, 100.0];

        fn subscription() -> impl Strategy<Value = serde_json::Value> {
            (
                0..3usize,
                prop::option::of(0..3usize),
                prop::option::of(0..6usize),
            )
                .prop_map(|(t, tf, min)| {
                    let mut s = json!({"signal_type": TYPES[t]});
                    if let Some(tf) = tf {
                        s["timeframe"] = json!(TIMEFRAMES[tf]);
                    }
                    if let Some(min) = min {
                        s["min_confidence"] = json!(CONFIDENCES[min]);
                    }
                    s
                })
        }

        fn pipelines() -> impl Strategy<Value = Vec<Pipeline>> {
            prop::collection::vec(
                (
                    prop::collection::vec(0..5usize, 1..4),
                    prop::collection::vec(subscription(), 0..4),
                ),
                0..8,
            )
            .prop_map(|ps| {
                ps.into_iter()
                    .enumerate()
                    .map(|(i, (tickers, subs))| {
                        let tickers: Vec<&str> = tickers.iter().map(|&t| TICKERS[t]).collect();
                        pipeline(&format!("p{i}"), &tickers, json!(subs))
                    })
                    .collect()
            })
        }

        fn signals() -> impl Strategy<Value = Signal> {
            (
                0..4usize,
                prop::option::of(0..3usize),
                prop::sample::subsequence(vec![0usize, 1, 2, 3, 4], 1..4),
                prop::collection::vec(0..6usize, 3),
            )
                .prop_map(|(t, tf, tickers, confidences)| {
                    let tickers: Vec<(&str, f64)> = tickers
                        .iter()
                        .zip(&confidences)
                        .map(|(&t, &c)| (TICKERS[t], CONFIDENCES[c]))
                        .collect();
                    signal(TYPES[t], tf.map(|tf| TIMEFRAMES[tf]), &tickers)
                })
        }

        /// The rule applied pipeline by pipeline, in the index's output order.
        fn scan(pipelines: &[Pipeline], s: &Signal) -> Vec<String> {
            let mut out = Vec::new();
            for ts in &s.tickers {
                for p in pipelines {
                    if p.tickers.contains(&ts.ticker)
                        && confidence_threshold(p, s).is_some_and(|t| ts.confidence.value() >= t)
                    {
                        out.push(format!("{}:{}", p.pipeline_id, ts.ticker));
                    }
                }
            }
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
            #[test]
            fn the_index_agrees_with_a_plain_scan(ps in pipelines(), s in signals()) {
                let index = PipelineIndex::new(ps.clone());
                prop_assert_eq!(fanout(&index, &s), scan(&ps, &s));
            }
        }
    }
}

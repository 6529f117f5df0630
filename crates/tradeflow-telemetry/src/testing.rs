//! Test helpers: a meter whose metrics are read back from the SDK's in-memory exporter, and
//! hand-built domain reports. Other crates' tests get them with the `testing` feature.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use serde_json::json;
use tradeflow_core::execution::{ExecutionRecord, ExecutionStatus};
use tradeflow_core::signal::Signal;

pub struct TestMeter {
    pub provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
}

impl Default for TestMeter {
    fn default() -> Self {
        TestMeter::new()
    }
}

impl TestMeter {
    pub fn new() -> Self {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        TestMeter { provider, exporter }
    }

    pub fn meter(&self) -> Meter {
        self.provider.meter("test")
    }

    /// Flushes and returns the latest cumulative values.
    pub fn snapshot(&self) -> Snapshot {
        self.provider.force_flush().unwrap();
        let exported = self.exporter.get_finished_metrics().unwrap();
        let mut points = Vec::new();
        if let Some(rm) = exported.last() {
            for scope in rm.scope_metrics() {
                for metric in scope.metrics() {
                    collect(metric.name(), metric.unit(), metric.data(), &mut points);
                }
            }
        }
        Snapshot { points }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Sum(f64),
    Gauge(f64),
    Histogram {
        count: u64,
        sum: f64,
        bounds: Vec<f64>,
    },
}

#[derive(Debug, Clone)]
pub struct Point {
    pub name: String,
    pub unit: String,
    pub labels: BTreeMap<String, String>,
    pub value: Value,
}

fn labels<'a>(
    attrs: impl Iterator<Item = &'a opentelemetry::KeyValue>,
) -> BTreeMap<String, String> {
    attrs
        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect()
}

fn collect(name: &str, unit: &str, data: &AggregatedMetrics, out: &mut Vec<Point>) {
    match data {
        AggregatedMetrics::F64(d) => push(name, unit, d, |v| v, out),
        AggregatedMetrics::U64(d) => push(name, unit, d, |v| v as f64, out),
        AggregatedMetrics::I64(d) => push(name, unit, d, |v| v as f64, out),
    }
}

fn push<T: Copy>(
    name: &str,
    unit: &str,
    data: &MetricData<T>,
    f: impl Fn(T) -> f64,
    out: &mut Vec<Point>,
) {
    let point = |labels, value| Point {
        name: name.to_owned(),
        unit: unit.to_owned(),
        labels,
        value,
    };
    match data {
        MetricData::Sum(s) => out.extend(
            s.data_points()
                .map(|p| point(labels(p.attributes()), Value::Sum(f(p.value())))),
        ),
        MetricData::Gauge(g) => out.extend(
            g.data_points()
                .map(|p| point(labels(p.attributes()), Value::Gauge(f(p.value())))),
        ),
        MetricData::Histogram(h) => out.extend(h.data_points().map(|p| {
            point(
                labels(p.attributes()),
                Value::Histogram {
                    count: p.count(),
                    sum: f(p.sum()),
                    bounds: p.bounds().collect(),
                },
            )
        })),
        MetricData::ExponentialHistogram(_) => panic!("unexpected exponential histogram {name}"),
    }
}

pub struct Snapshot {
    pub points: Vec<Point>,
}

impl Snapshot {
    /// The point of `name` with exactly `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&Point> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.points
            .iter()
            .find(|p| p.name == name && p.labels == want)
    }

    /// A counter's value (0 when the series does not exist).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.find(name, labels).map(|p| &p.value) {
            Some(Value::Sum(v)) => *v,
            None => 0.0,
            other => panic!("{name} is not a counter: {other:?}"),
        }
    }

    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.find(name, labels).map(|p| &p.value) {
            Some(Value::Gauge(v)) => Some(*v),
            None => None,
            other => panic!("{name} is not a gauge: {other:?}"),
        }
    }

    /// A histogram's (count, sum); (0, 0) when the series does not exist.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> (u64, f64) {
        match self.find(name, labels).map(|p| &p.value) {
            Some(Value::Histogram { count, sum, .. }) => (*count, *sum),
            None => (0, 0.0),
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    }

    /// Every label set recorded for `name`.
    pub fn series(&self, name: &str) -> Vec<BTreeMap<String, String>> {
        self.points
            .iter()
            .filter(|p| p.name == name)
            .map(|p| p.labels.clone())
            .collect()
    }
}

/// A valid signal of `signal_type` from `source` for `ticker`.
pub fn signal(id: &str, signal_type: &str, source: &str, ticker: &str) -> Signal {
    Signal::parse(
        &json!({
            "signal_id": id, "signal_type": signal_type, "source": source, "timestamp": 1_700_000_000,
            "tickers": [{"ticker": ticker, "signal": "BULLISH", "confidence": 80}],
            "metadata": {"timeframe": "5"}
        })
        .to_string(),
    )
    .unwrap()
}

/// A finished execution record with the given steps `(name, status, duration_ms)`.
pub fn record(
    status: ExecutionStatus,
    decision: Option<&str>,
    steps: &[(&str, &str, f64)],
) -> ExecutionRecord {
    serde_json::from_value(json!({
        "execution_id": "e1", "pipeline_id": "p1", "user_id": "u1", "ticker": "AAPL",
        "status": status.as_str(),
        "signal_context": {
            "signal_id": "s1", "signal_type": "rsi_oversold", "source": "rsi_generator",
            "timestamp": 1_700_000_000, "tickers": ["AAPL"], "confidence": 80.0, "signal": "BULLISH"
        },
        "created_at": 1_700_000_000, "started_at": 1_700_000_000, "completed_at": 1_700_000_001,
        "steps": steps.iter().map(|(name, st, ms)| json!({
            "step": name, "status": st, "duration_ms": ms, "summary": "", "outputs": {}
        })).collect::<Vec<_>>(),
        "error": null, "attempts": 1, "in_progress_until": null,
        "order_id": decision.filter(|d| *d == "order_placed").map(|_| "o1"),
        "decision": decision,
    }))
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        DispatcherMetrics, ExecutorMetrics, GeneratorMetrics, METRIC_NAMES, MetricKind, Telemetry,
    };
    use std::collections::BTreeSet;
    use std::time::Duration;
    use tradeflow_core::dispatch::{DispatchReport, MessageFailure};
    use tradeflow_core::execute::{MessageReport, Outcome};
    use tradeflow_core::generate::{ScanReport, StreamError};

    #[tokio::test(flavor = "current_thread")]
    async fn metric_names_lists_exactly_the_instruments() {
        let t = TestMeter::new();
        let telemetry = Telemetry::from_provider(t.provider.clone(), Duration::from_secs(1));
        let meter = telemetry.meter();
        let mut scan = ScanReport {
            publish_calls: 1,
            ..ScanReport::default()
        };
        scan.sent = vec![signal("a", "rsi_oversold", "rsi_generator", "AAPL")];
        scan.undelivered = vec![(
            signal("b", "rsi_oversold", "rsi_generator", "MSFT"),
            "x".into(),
        )];
        scan.errors = vec![StreamError {
            stream: "s".into(),
            error_type: "market_data",
            reason: "r".into(),
            retryable: true,
        }];
        scan.detector_time
            .insert("rsi_generator", Duration::from_micros(5));
        let generator = GeneratorMetrics::new(&meter);
        generator.record_scan(&scan, Duration::from_millis(1));
        generator.record_dlq_depth(crate::DLQ_SIGNALS, 0);
        generator.record_queue_depth(crate::DLQ_SIGNALS, 0);
        let failure = |poison| MessageFailure {
            message_id: format!("{poison}"),
            label: "x",
            reason: "r".into(),
            poison,
        };
        DispatcherMetrics::new(&meter).record_batch(
            &DispatchReport {
                received: 2,
                consumed: 1,
                lags_ms: vec![5],
                cache_refreshed: true,
                failures: vec![failure(true), failure(false)],
                ..DispatchReport::default()
            },
            Duration::from_millis(1),
        );
        let executor = ExecutorMetrics::new(&meter);
        let report = |outcome| MessageReport {
            message_id: "m".into(),
            outcome,
            duration: Duration::from_millis(1),
            lag_ms: Some(1),
        };
        executor.record_batch(&[
            report(Outcome::Finished(Box::new(record(
                ExecutionStatus::Completed,
                Some("order_placed"),
                &[("bias", "COMPLETED", 1.0)],
            )))),
            report(Outcome::Duplicate(ExecutionStatus::Completed)),
            report(Outcome::Retry {
                label: "x",
                reason: "r".into(),
            }),
        ]);
        telemetry.start_invocation("timer").finish(true);
        telemetry.flush().await;

        let points = t.snapshot().points;
        // Every point is an instrument of the catalogue, with its kind, unit, buckets and labels.
        for p in &points {
            let def = crate::catalogue::metric(&p.name)
                .unwrap_or_else(|| panic!("{} is not in catalogue::METRICS", p.name));
            assert_eq!(p.unit, def.unit, "unit of {}", p.name);
            match (&p.value, def.kind) {
                (Value::Sum(_), MetricKind::Counter) | (Value::Gauge(_), MetricKind::Gauge) => {}
                (Value::Histogram { bounds, .. }, MetricKind::Histogram) => {
                    assert_eq!(bounds.as_slice(), def.buckets, "buckets of {}", p.name);
                }
                (value, kind) => panic!("{} is a {kind:?} in the catalogue: {value:?}", p.name),
            }
            for key in p.labels.keys() {
                assert!(
                    def.labels.contains(&key.as_str()),
                    "{} has label {key}, not in its catalogue entry {:?}",
                    p.name,
                    def.labels
                );
            }
        }
        let exported: BTreeSet<String> = points.into_iter().map(|p| p.name).collect();
        let listed: BTreeSet<String> = METRIC_NAMES.iter().map(|n| (*n).to_owned()).collect();
        assert_eq!(exported, listed);
        assert_eq!(
            listed.len(),
            METRIC_NAMES.len(),
            "duplicates in METRIC_NAMES"
        );
    }
}

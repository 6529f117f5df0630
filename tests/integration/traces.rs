//! One trace per signal across the three functions: the real handlers on the emulator, exporting
//! spans over OTLP/HTTP (the real exporter) to a receiver this test runs, which decodes them. The
//! signals take the deployed path: the generator publishes to the signals topic, whose raw
//! subscription delivers them (and their trace context, as message attributes) to the signals
//! queue.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tradeflow_core::detectors::all_detectors;
use tradeflow_core::market::SyntheticFeed;
use tradeflow_core::ports::ExecutionStore;
use tradeflow_core::vocab::{Bar, Timeframe};
use tradeflow_local::chain::Functions;
use tradeflow_telemetry::{Telemetry, TelemetryConfig};

use crate::helpers::*;

/// Spans received, with the `service.name` of the resource they came under.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

/// An OTLP/HTTP receiver on 127.0.0.1 (ephemeral port): every POST body is decoded as an
/// `ExportTraceServiceRequest` and answered 200 with an empty (valid) response. Keep-alive, as
/// the exporter's client reuses its connection. Returns the traces URL and what it received.
async fn otlp_receiver() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let received: Received = Arc::default();
    let sink = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, Arc::clone(&sink)));
        }
    });
    (url, received)
}

async fn serve(mut stream: tokio::net::TcpStream, sink: Received) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // Headers.
        let header_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < header_end + length {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..header_end + length).skip(header_end).collect();
        assert!(head.starts_with("POST /v1/traces "), "{head}");
        let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        {
            let mut sink = sink.lock().unwrap();
            for resource in request.resource_spans {
                let service = resource
                    .resource
                    .as_ref()
                    .and_then(|r| string_attribute(&r.attributes, "service.name"))
                    .unwrap_or_default();
                for scope in resource.scope_spans {
                    for span in scope.spans {
                        sink.push((service.clone(), span));
                    }
                }
            }
        }
        let response =
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn string_attribute(
    attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Value::StringValue(s) => s.clone(),
            Value::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

fn attr(span: &Span, key: &str) -> Option<String> {
    string_attribute(&span.attributes, key)
}

const BARS: i64 = 700;
const FIRST: i64 = 5_000_000;

/// `AAPL_5.csv` in `dir`: the candles the generator scans and the executor's snapshot reads.
fn write_csv(dir: &std::path::Path) -> Vec<Bar> {
    let feed = SyntheticFeed { seed: 99 };
    let bars: Vec<Bar> = (FIRST..FIRST + BARS)
        .map(|k| feed.bar("AAPL", Timeframe::M5, k))
        .collect();
    let mut f = std::fs::File::create(dir.join("AAPL_5.csv")).unwrap();
    writeln!(f, "timestamp,open,high,low,close,volume").unwrap();
    for b in &bars {
        writeln!(
            f,
            "{},{},{},{},{},{}",
            b.time, b.open, b.high, b.low, b.close, b.volume
        )
        .unwrap();
    }
    bars
}

/// Signals the generator finds in the last `backfill` candles.
fn signals_in(bars: &[Bar], backfill: usize) -> usize {
    (bars.len() - backfill..bars.len())
        .map(|i| {
            all_detectors()
                .iter()
                .filter(|d| d.detect(bars, i).is_some())
                .count()
        })
        .sum()
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn one_trace_follows_each_signal_through_dispatch_to_its_executions_and_their_steps() {
    let (traces_url, received) = otlp_receiver().await;
    let sdk = emulator().await;
    let stack = TestStack::deploy(sdk).await;
    // Two pipelines take every AAPL signal: each dispatched signal fans out to both.
    stack
        .seed(&[
            pipeline("p-a", &["AAPL"], serde_json::json!([])),
            pipeline("p-b", &["AAPL"], serde_json::json!([])),
        ])
        .await;
    let dir = std::env::temp_dir().join(format!("tradeflow-traces-{}", stack.stage));
    std::fs::create_dir_all(&dir).unwrap();
    let bars = write_csv(&dir);
    // The fewest candles that fire a signal: a short trace to read when the test fails.
    let backfill = [10, 20, 40, 80, 160, 300]
        .into_iter()
        .find(|&n| signals_in(&bars, n) > 0)
        .unwrap();
    let csv_dir = dir.to_string_lossy().into_owned();
    let extra: HashMap<String, String> = [
        ("MARKET_DATA", "csv"),
        ("MARKET_DATA_CSV_DIR", csv_dir.as_str()),
        ("GENERATOR_TICKERS", "AAPL"),
        ("GENERATOR_TIMEFRAMES", "5"),
        ("GENERATOR_BACKFILL_BARS", &backfill.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();

    // Each function's telemetry exports spans to the receiver (metrics nowhere), as
    // OTEL_TRACES_EXPORTER=otlp makes the deployed ones do.
    let made: Arc<Mutex<Vec<Telemetry>>> = Arc::default();
    let telemetry = {
        let made = Arc::clone(&made);
        let url = traces_url.clone();
        move |service: &str| {
            let vars: HashMap<&str, String> = [
                ("OTEL_TRACES_EXPORTER", "otlp".to_owned()),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url.clone()),
                ("TELEMETRY_FLUSH_TIMEOUT_MS", "5000".to_owned()),
            ]
            .into_iter()
            .collect();
            let t = Telemetry::from_config(TelemetryConfig::from_lookup(service, |k| {
                vars.get(k).cloned()
            }));
            assert!(t.traces().is_enabled());
            made.lock().unwrap().push(t.clone());
            t
        }
    };
    let functions = Functions::in_process_with(&stack.sdk, &stack.outputs, &extra, &telemetry)
        .await
        .unwrap();
    let chain = stack.start_chain(functions).await;
    let summary = chain.fire_generator((FIRST + BARS) * 300).await.unwrap();
    let sent = summary["signals_sent"].as_u64().unwrap();
    assert!(sent > 0, "{summary}");
    assert!(
        chain.wait_idle(Duration::from_secs(60)).await.unwrap(),
        "queues drain"
    );
    chain.stop().await;
    let made: Vec<Telemetry> = made.lock().unwrap().clone();
    for t in &made {
        t.shutdown().await;
    }

    let spans: Vec<(String, Span)> = received.lock().unwrap().clone();
    let by_id: HashMap<Vec<u8>, &Span> =
        spans.iter().map(|(_, s)| (s.span_id.clone(), s)).collect();
    let service_of: HashMap<Vec<u8>, &str> = spans
        .iter()
        .map(|(svc, s)| (s.span_id.clone(), svc.as_str()))
        .collect();
    let children = |parent: &Span, prefix: &str| -> Vec<&Span> {
        spans
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.parent_span_id == parent.span_id && s.name.starts_with(prefix))
            .collect()
    };
    let named = |prefix: &str| -> Vec<&Span> {
        spans
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.name.starts_with(prefix))
            .collect()
    };

    // The generator: one root span per signal sent, named by type (the ticker an attribute).
    let signals = named("signal ");
    assert_eq!(signals.len() as u64, sent, "one span per signal");
    for s in &signals {
        assert!(s.parent_span_id.is_empty(), "a signal starts its trace");
        assert_eq!(service_of[&s.span_id], "signal-generator");
        let kind = attr(s, "tradeflow.signal.type").unwrap();
        assert_eq!(s.name, format!("signal {kind}"));
        assert_eq!(attr(s, "tradeflow.signal.ticker").as_deref(), Some("AAPL"));
        assert!(attr(s, "tradeflow.signal.id").is_some());
        assert_eq!(attr(s, "tradeflow.status").as_deref(), Some("sent"));
    }
    let trace_ids: BTreeSet<&Vec<u8>> = signals.iter().map(|s| &s.trace_id).collect();
    assert_eq!(trace_ids.len(), signals.len(), "a trace per signal");

    // The dispatcher: a span per signal message, the child of its signal's span (redeliveries
    // would add more, never fewer).
    let dispatches = named("dispatch");
    for s in &signals {
        assert!(
            !children(s, "dispatch").is_empty(),
            "{} was dispatched",
            s.name
        );
    }
    for d in &dispatches {
        let parent = by_id[&d.parent_span_id];
        assert!(parent.name.starts_with("signal "), "{}", parent.name);
        assert_eq!(d.trace_id, parent.trace_id);
        assert_eq!(service_of[&d.span_id], "trigger-dispatcher");
    }

    // The executor: every execution span is the child of the dispatch span of the signal that
    // caused it, and a dispatch that fanned out to both pipelines has one execution span for
    // each.
    let executions = named("execute");
    assert!(!executions.is_empty());
    for e in &executions {
        let parent = by_id[&e.parent_span_id];
        assert_eq!(parent.name, "dispatch");
        assert_eq!(e.trace_id, parent.trace_id);
        assert_eq!(service_of[&e.span_id], "pipeline-executor");
    }
    let fanned: Vec<&&Span> = dispatches
        .iter()
        .filter(|d| attr(d, "tradeflow.dispatch.enqueued").as_deref() == Some("2"))
        .collect();
    assert!(!fanned.is_empty(), "a signal fanned out to both pipelines");
    for d in &fanned {
        assert_eq!(attr(d, "tradeflow.dispatch.matched").as_deref(), Some("2"));
        let pipelines: BTreeSet<String> = children(d, "execute")
            .iter()
            .filter_map(|e| attr(e, "tradeflow.pipeline.id"))
            .collect();
        assert_eq!(
            pipelines,
            BTreeSet::from(["p-a".to_owned(), "p-b".to_owned()]),
            "two execution spans under one dispatch span"
        );
    }

    // The steps: under each execution span, one span per step of the run, named, with the
    // status the execution record has for it, in the same trace.
    let store = stack.executions();
    let mut runs = 0;
    for e in &executions {
        let status = attr(e, "tradeflow.status").unwrap();
        if !["COMPLETED", "FAILED", "SKIPPED"].contains(&status.as_str()) {
            continue; // a redelivery (duplicate, retry): no run of its own
        }
        runs += 1;
        let id = attr(e, "tradeflow.execution.id").unwrap();
        let record = store.get_execution(&id).await.unwrap().unwrap();
        assert_eq!(record.status.as_str(), status);
        let mut steps = children(e, "step ");
        steps.sort_by_key(|s| s.start_time_unix_nano);
        let got: Vec<(String, String)> = steps
            .iter()
            .map(|s| {
                assert_eq!(s.trace_id, e.trace_id);
                (s.name.clone(), attr(s, "tradeflow.status").unwrap())
            })
            .collect();
        let want: Vec<(String, String)> = record
            .steps
            .iter()
            .map(|s| {
                let status = serde_json::to_value(s.status).unwrap();
                (
                    format!("step {}", s.step),
                    status.as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(got, want, "{id}");
        if status == "COMPLETED" {
            assert_eq!(got.len(), 5, "every step of the pipeline ran: {got:?}");
        }
    }
    assert!(runs >= 2, "{runs}");
    eprintln!(
        "spans: {} signal, {} dispatch ({} fanned out to both pipelines), {} execute ({runs} runs), {} step",
        signals.len(),
        dispatches.len(),
        fanned.len(),
        executions.len(),
        named("step ").len()
    );

    let _ = std::fs::remove_dir_all(&dir);
    stack.delete().await;
}

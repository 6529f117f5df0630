//! Spans: the tracer provider beside the meter provider, the W3C trace context to and from the
//! plain [`TraceContext`] a message carries, and the spans of the three functions.
//!
//! One trace per signal: `signal <type>` (generator, the root) → `dispatch` (dispatcher,
//! one per signal message) → `execute` (executor, one per execution request) → `step <name>`
//! (one per pipeline step). Each function starts its span as a child of the context its message
//! came with, and sends its own span's context with the messages it causes.
//!
//! When traces are off ([`Traces::disabled`]) nothing is recorded or allocated per span: every
//! span is [`MessageSpan::none`], and a message's context passes through a function unchanged
//! (the next function's span hangs under the last one that traced).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    SdkTracer, SdkTracerProvider, SpanData, SpanExporter as _, SpanProcessor,
};
use tradeflow_core::ports::{SpanHandle, Tracer};
use tradeflow_core::signal::Signal;
use tradeflow_core::trace::{TRACEPARENT, TRACESTATE, TraceContext};
use tradeflow_core::vocab::InboundMessage;

/// `tradeflow.status` on every span: how its work ended (`sent`, `COMPLETED`, `retry`...).
pub const STATUS_ATTRIBUTE: &str = "tradeflow.status";

/// The spans of one function process. Cheap to clone; [`Traces::disabled`] records nothing.
#[derive(Clone, Default)]
pub struct Traces {
    inner: Option<Arc<TracesInner>>,
}

struct TracesInner {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    /// The OTLP export, sent by the flush itself; `None` for a provider with the SDK's own
    /// processors ([`Traces::new`]), which is force-flushed instead.
    otlp: Option<SpanExport>,
}

impl std::fmt::Debug for Traces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traces")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

impl Traces {
    /// Records nothing: every span is [`MessageSpan::none`].
    pub fn disabled() -> Self {
        Traces { inner: None }
    }

    /// Spans from `provider` with the SDK's own processors (tests: an in-memory exporter);
    /// [`crate::Telemetry::flush`] force-flushes it with the metrics.
    pub fn new(provider: SdkTracerProvider) -> Self {
        let tracer = provider.tracer("tradeflow");
        Traces {
            inner: Some(Arc::new(TracesInner {
                provider,
                tracer,
                otlp: None,
            })),
        }
    }

    /// Spans of `resource`, sampled by `sampler`, kept by a [`BufferingProcessor`] and sent
    /// through `exporter` by each flush.
    pub(crate) fn otlp(
        resource: opentelemetry_sdk::Resource,
        sampler: opentelemetry_sdk::trace::Sampler,
        mut exporter: opentelemetry_otlp::SpanExporter,
    ) -> Self {
        // The SDK hands the resource to its processors' exporters; this one is the flush's.
        exporter.set_resource(&resource);
        let buffer = Arc::new(SpanBuffer::default());
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_sampler(sampler)
            .with_span_processor(BufferingProcessor {
                buffer: Arc::clone(&buffer),
            })
            .build();
        let tracer = provider.tracer("tradeflow");
        Traces {
            inner: Some(Arc::new(TracesInner {
                provider,
                tracer,
                otlp: Some(SpanExport {
                    buffer,
                    exporter: Arc::new(exporter),
                }),
            })),
        }
    }

    /// Whether spans are recorded.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    pub(crate) fn provider(&self) -> Option<&SdkTracerProvider> {
        self.inner.as_deref().map(|i| &i.provider)
    }

    /// Starts a span named `name` under `parent` (a message's context; `None` or malformed: the
    /// root of a new trace).
    pub fn start(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        parent: Option<&TraceContext>,
        attributes: Vec<KeyValue>,
    ) -> MessageSpan {
        let Some(inner) = &self.inner else {
            return MessageSpan::none();
        };
        let span = inner
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(&inner.tracer, &extract(parent));
        MessageSpan { span: Some(span) }
    }

    /// One consumer span `name` per message, each a child of the context the message came with;
    /// each message then carries its span's context instead, so what the domain does and sends
    /// for it hangs under that span. Disabled: no spans, the messages unchanged.
    pub fn start_for_messages(
        &self,
        name: &'static str,
        messages: &mut [InboundMessage],
    ) -> Vec<MessageSpan> {
        if self.inner.is_none() {
            return Vec::new();
        }
        messages
            .iter_mut()
            .map(|m| {
                let span = self.start(
                    name,
                    SpanKind::Consumer,
                    m.trace.as_ref(),
                    vec![KeyValue::new("messaging.message.id", m.message_id.clone())],
                );
                m.trace = span.context();
                span
            })
            .collect()
    }

    /// Sends the spans ended since the last call: the buffered ones in one OTLP request on this
    /// runtime, or (a provider with the SDK's processors) its force-flush on a blocking thread.
    pub(crate) async fn export(&self) -> Result<(), String> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        match &inner.otlp {
            Some(otlp) => {
                let (spans, dropped) = otlp.buffer.take();
                if dropped > 0 {
                    tracing::warn!(
                        dropped,
                        max = MAX_BUFFERED_SPANS,
                        "spans dropped: more ended between two flushes than are kept"
                    );
                }
                if spans.is_empty() {
                    return Ok(());
                }
                otlp.exporter
                    .export(spans)
                    .await
                    .map_err(|e| format!("spans: {e}"))
            }
            None => {
                let provider = inner.provider.clone();
                match tokio::task::spawn_blocking(move || provider.force_flush()).await {
                    Ok(result) => result.map_err(|e| format!("spans: {e}")),
                    Err(join) => Err(format!("spans: {join}")),
                }
            }
        }
    }

    /// Sends what is left and stops the provider (process exit). Errors are logged.
    pub(crate) async fn shutdown(&self) {
        if self.inner.is_none() {
            return;
        }
        if let Err(e) = self.export().await {
            tracing::debug!(error = %e, "last span export at shutdown");
        }
        if let Some(p) = self.provider()
            && let Err(e) = p.shutdown()
        {
            tracing::debug!(error = %e, "tracer provider shutdown");
        }
    }
}

/// The span of a signal and of a pipeline step, for the domain ([`Tracer`]).
impl Tracer for Traces {
    fn signal(&self, signal: &Signal) -> Option<Box<dyn SpanHandle>> {
        self.inner.as_ref()?;
        let tickers: Vec<&str> = signal.tickers.iter().map(|t| t.ticker.as_str()).collect();
        let tickers = tickers.join(",");
        let span = self.start(
            // The tickers go in an attribute: a span name stays low-cardinality.
            format!("signal {}", signal.signal_type),
            SpanKind::Producer,
            None,
            vec![
                KeyValue::new("tradeflow.signal.id", signal.signal_id.clone()),
                KeyValue::new("tradeflow.signal.type", signal.signal_type.to_string()),
                KeyValue::new("tradeflow.signal.ticker", tickers),
                KeyValue::new("messaging.system", "aws_sqs"),
            ],
        );
        Some(Box::new(span))
    }

    fn step(&self, parent: Option<&TraceContext>, step: &str) -> Option<Box<dyn SpanHandle>> {
        self.inner.as_ref()?;
        let span = self.start(
            format!("step {step}"),
            SpanKind::Internal,
            parent,
            vec![KeyValue::new("tradeflow.step.name", step.to_owned())],
        );
        Some(Box::new(span))
    }
}

/// Most spans kept between two flushes; more are dropped (and counted in a warning).
pub const MAX_BUFFERED_SPANS: usize = 2_048;

/// Ended spans waiting for the next flush.
#[derive(Debug, Default)]
pub(crate) struct SpanBuffer {
    spans: Mutex<Vec<SpanData>>,
    dropped: AtomicUsize,
}

impl SpanBuffer {
    /// Everything buffered, and how many spans were dropped since the last take.
    fn take(&self) -> (Vec<SpanData>, usize) {
        let spans = std::mem::take(&mut *self.spans.lock().unwrap_or_else(|p| p.into_inner()));
        (spans, self.dropped.swap(0, Ordering::Relaxed))
    }
}

/// The span processor of the functions: ended spans (sampled ones) wait in memory, at most
/// [`MAX_BUFFERED_SPANS`] (more are dropped, never blocking the handler), for the
/// per-invocation flush, which sends them in one request on the function's runtime
/// ([`crate::Telemetry::flush`]). No background thread and no timer: a Lambda environment is
/// frozen between invocations, and every invocation flushes.
#[derive(Debug)]
pub(crate) struct BufferingProcessor {
    buffer: Arc<SpanBuffer>,
}

impl SpanProcessor for BufferingProcessor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        let mut spans = self.buffer.spans.lock().unwrap_or_else(|p| p.into_inner());
        if spans.len() < MAX_BUFFERED_SPANS {
            spans.push(span);
        } else {
            self.buffer.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Nothing: [`Traces`]' flush takes the buffer and exports it on the runtime.
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: std::time::Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The OTLP half of the tracer provider: the buffer its processor fills and the exporter the
/// flush sends it through.
struct SpanExport {
    buffer: Arc<SpanBuffer>,
    exporter: Arc<opentelemetry_otlp::SpanExporter>,
}

/// One span of a function ([`Traces::start`]); [`MessageSpan::none`] when traces are off.
#[derive(Debug, Default)]
pub struct MessageSpan {
    span: Option<opentelemetry_sdk::trace::Span>,
}

impl MessageSpan {
    /// No span.
    pub fn none() -> Self {
        MessageSpan { span: None }
    }

    /// Whether a span is being recorded.
    pub fn is_recording(&self) -> bool {
        self.span.as_ref().is_some_and(|s| s.is_recording())
    }

    /// The context to send with the messages it causes: its `traceparent` (sampled flag and
    /// all: an unsampled span's children are not sampled either) and `tracestate`.
    pub fn context(&self) -> Option<TraceContext> {
        let span = self.span.as_ref()?;
        let context = Context::new().with_remote_span_context(span.span_context().clone());
        inject(&context)
    }

    pub fn set_attribute(&mut self, attribute: KeyValue) {
        if let Some(span) = &mut self.span {
            span.set_attribute(attribute);
        }
    }

    /// Ends it with `status` ([`STATUS_ATTRIBUTE`]) and, when `error` is given, the error status
    /// with that description.
    pub fn finish(mut self, status: &str, error: Option<&str>) {
        if let Some(span) = &mut self.span {
            span.set_attribute(KeyValue::new(STATUS_ATTRIBUTE, status.to_owned()));
            if let Some(error) = error {
                span.set_status(Status::error(error.to_owned()));
            }
            span.end();
        }
    }
}

impl SpanHandle for MessageSpan {
    fn context(&self) -> Option<TraceContext> {
        MessageSpan::context(self)
    }

    fn end(self: Box<Self>, status: &str, error: Option<&str>) {
        self.finish(status, error);
    }
}

/// Ends the dispatcher's `dispatch` spans ([`Traces::start_for_messages`] over `messages`) from
/// the batch's report: each with its message's fan-outs (`tradeflow.dispatch.matched`) and
/// requests sent (`tradeflow.dispatch.enqueued`), and the error status of its failure if any.
pub fn end_dispatch_spans(
    spans: Vec<MessageSpan>,
    messages: &[InboundMessage],
    report: &tradeflow_core::dispatch::DispatchReport,
) {
    for (i, (mut span, message)) in spans.into_iter().zip(messages).enumerate() {
        let count = |v: &[usize]| v.get(i).copied().unwrap_or(0) as i64;
        span.set_attribute(KeyValue::new(
            "tradeflow.dispatch.matched",
            count(&report.matched_by_message),
        ));
        span.set_attribute(KeyValue::new(
            "tradeflow.dispatch.enqueued",
            count(&report.enqueued_by_message),
        ));
        match report
            .failures
            .iter()
            .find(|f| f.message_id == message.message_id)
        {
            None => span.finish("dispatched", None),
            Some(f) => {
                span.set_attribute(KeyValue::new("error.type", f.label));
                span.finish(if f.poison { "rejected" } else { "retry" }, Some(&f.reason));
            }
        }
    }
}

/// Ends the executor's `execute` spans ([`Traces::start_for_messages`]) from the reports of
/// the same messages, in order: the run's ids and final status (`tradeflow.status` is the
/// execution status, or `duplicate`, `in_progress_elsewhere`, `retry`, `rejected`), the error
/// status for a FAILED run, a retry or a rejection.
pub fn end_execute_spans(
    spans: Vec<MessageSpan>,
    reports: &[tradeflow_core::execute::MessageReport],
) {
    use tradeflow_core::execute::Outcome;
    for (mut span, report) in spans.into_iter().zip(reports) {
        match &report.outcome {
            Outcome::Finished(record) | Outcome::FinishedLeaseHeld { record, .. } => {
                for (key, value) in [
                    ("tradeflow.execution.id", &record.execution_id),
                    ("tradeflow.pipeline.id", &record.pipeline_id),
                ] {
                    span.set_attribute(KeyValue::new(key, value.clone()));
                }
                span.set_attribute(KeyValue::new("tradeflow.ticker", record.ticker.to_string()));
                span.set_attribute(KeyValue::new(
                    "tradeflow.attempt",
                    i64::from(record.attempts),
                ));
                if let Some(decision) = &record.decision {
                    span.set_attribute(KeyValue::new("tradeflow.decision", decision.clone()));
                }
                let failed = record.status == tradeflow_core::execution::ExecutionStatus::Failed;
                let error = match &report.outcome {
                    Outcome::FinishedLeaseHeld { reason, .. } => Some(reason.as_str()),
                    _ if failed => Some(record.error.as_deref().unwrap_or("the run failed")),
                    _ => None,
                };
                span.finish(record.status.as_str(), error);
            }
            Outcome::Duplicate(status) => {
                span.set_attribute(KeyValue::new("tradeflow.execution.status", status.as_str()));
                span.finish("duplicate", None);
            }
            Outcome::InProgressElsewhere => span.finish("in_progress_elsewhere", None),
            Outcome::Retry { label, reason } => {
                span.set_attribute(KeyValue::new("error.type", *label));
                span.finish("retry", Some(reason));
            }
            Outcome::Rejected { reason } => span.finish("rejected", Some(reason)),
        }
    }
}

/// The context of `parent` for a new span: its remote span context when `traceparent` is a valid
/// W3C one, else an empty context (the span starts a new trace). Never fails: a malformed or
/// missing context costs the link, not the message.
pub fn extract(parent: Option<&TraceContext>) -> Context {
    let Some(parent) = parent else {
        return Context::new();
    };
    let mut carrier: HashMap<String, String> = HashMap::with_capacity(2);
    carrier.insert(TRACEPARENT.to_owned(), parent.traceparent.clone());
    if let Some(state) = &parent.tracestate {
        carrier.insert(TRACESTATE.to_owned(), state.clone());
    }
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        context
    } else {
        tracing::debug!(traceparent = %parent.traceparent, "malformed traceparent; starting a new trace");
        Context::new()
    }
}

/// `context`'s span as W3C `traceparent` / `tracestate`; `None` when it has no valid span.
pub fn inject(context: &Context) -> Option<TraceContext> {
    let mut carrier: HashMap<String, String> = HashMap::with_capacity(2);
    TraceContextPropagator::new().inject_context(context, &mut carrier);
    let traceparent = carrier.remove(TRACEPARENT)?;
    Some(TraceContext {
        traceparent,
        tracestate: carrier.remove(TRACESTATE).filter(|s| !s.is_empty()),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceId};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn traced() -> (Traces, InMemorySpanExporter) {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        (Traces::new(provider), exporter)
    }

    fn finished(exporter: &InMemorySpanExporter) -> Vec<SpanData> {
        exporter.get_finished_spans().unwrap()
    }

    fn context(traceparent: &str) -> TraceContext {
        TraceContext {
            traceparent: traceparent.into(),
            tracestate: None,
        }
    }

    #[test]
    fn a_span_is_the_child_of_the_context_its_message_came_with() {
        let (traces, exporter) = traced();
        let parent = TraceContext {
            traceparent: PARENT.into(),
            tracestate: Some("vendor=1".into()),
        };
        let span = traces.start("dispatch", SpanKind::Consumer, Some(&parent), Vec::new());
        let sent = span.context().unwrap();
        span.finish("ok", None);
        let spans = finished(&exporter);
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!(
            s.span_context.trace_id(),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
        );
        assert_eq!(
            s.parent_span_id,
            SpanId::from_hex("00f067aa0ba902b7").unwrap()
        );
        // What it sends on names this span, in the same trace, with the state kept.
        assert_eq!(
            sent.traceparent,
            format!(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
                s.span_context.span_id()
            )
        );
        assert_eq!(sent.tracestate.as_deref(), Some("vendor=1"));
    }

    /// A malformed or missing `traceparent` starts a new trace and never fails the message.
    #[test]
    fn a_malformed_or_missing_traceparent_starts_a_new_root() {
        let (traces, exporter) = traced();
        let mut messages: Vec<InboundMessage> = [
            None,
            Some(context("garbage")),
            Some(context(
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            )),
            Some(context("00-4bf92f3577b34da6a3ce929d0e0e4736-zzzz-01")),
            Some(context("")),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, trace)| InboundMessage {
            message_id: format!("m{i}"),
            trace,
            ..InboundMessage::default()
        })
        .collect();
        let spans = traces.start_for_messages("dispatch", &mut messages);
        assert_eq!(spans.len(), 5);
        for (span, m) in spans.into_iter().zip(&messages) {
            // Each message now carries its own span's valid context.
            assert!(m.trace.as_ref().unwrap().traceparent.starts_with("00-"));
            span.finish("ok", None);
        }
        let done = finished(&exporter);
        assert_eq!(done.len(), 5);
        let mut trace_ids: Vec<TraceId> = done
            .iter()
            .map(|s| {
                assert_eq!(s.parent_span_id, SpanId::INVALID, "{}", s.name);
                s.span_context.trace_id()
            })
            .collect();
        trace_ids.sort_by_key(|t| t.to_string());
        trace_ids.dedup();
        assert_eq!(trace_ids.len(), 5, "each a trace of its own");
        assert!(
            extract(Some(&context("garbage")))
                .span()
                .span_context()
                .trace_id()
                == TraceId::INVALID
        );
    }

    #[test]
    fn disabled_traces_record_nothing_and_pass_contexts_through() {
        let traces = Traces::disabled();
        let mut messages = vec![InboundMessage {
            trace: Some(context(PARENT)),
            ..InboundMessage::default()
        }];
        assert!(
            traces
                .start_for_messages("dispatch", &mut messages)
                .is_empty()
        );
        assert_eq!(messages[0].trace, Some(context(PARENT)));
        let span = traces.start("x", SpanKind::Internal, None, Vec::new());
        assert!(!span.is_recording() && span.context().is_none());
        assert!(Tracer::step(&traces, Some(&context(PARENT)), "bias").is_none());
    }

    /// Ended spans wait in the buffer the flush takes; an unsampled trace keeps nothing; past
    /// the cap spans are dropped and counted, never blocking.
    #[test]
    fn spans_wait_for_the_flush_and_unsampled_ones_are_not_kept() {
        let buffer = Arc::new(SpanBuffer::default());
        let provider = SdkTracerProvider::builder()
            .with_span_processor(BufferingProcessor {
                buffer: Arc::clone(&buffer),
            })
            .build();
        let traces = Traces::new(provider);
        for name in ["a", "b"] {
            traces
                .start(name, SpanKind::Internal, None, Vec::new())
                .finish("ok", None);
        }
        let unsampled = context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
        let child = traces.start("c", SpanKind::Consumer, Some(&unsampled), Vec::new());
        assert!(!child.is_recording(), "the parent's decision is kept");
        assert!(child.context().unwrap().traceparent.ends_with("-00"));
        child.finish("ok", None);
        let (spans, dropped) = buffer.take();
        let names: Vec<String> = spans.iter().map(|s| s.name.to_string()).collect();
        assert_eq!((names, dropped), (vec!["a".to_owned(), "b".to_owned()], 0));
        assert!(buffer.take().0.is_empty(), "taken once");
        for _ in 0..MAX_BUFFERED_SPANS + 5 {
            traces
                .start("x", SpanKind::Internal, None, Vec::new())
                .finish("ok", None);
        }
        let (spans, dropped) = buffer.take();
        assert_eq!((spans.len(), dropped), (MAX_BUFFERED_SPANS, 5));
    }

    #[test]
    fn an_error_ends_the_span_with_the_error_status() {
        let (traces, exporter) = traced();
        let step = Tracer::step(&traces, Some(&context(PARENT)), "bias").unwrap();
        step.end("FAILED", Some("no bars"));
        let s = &finished(&exporter)[0];
        assert_eq!(s.name, "step bias");
        assert_eq!(s.status, Status::error("no bars"));
        assert!(
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == STATUS_ATTRIBUTE && kv.value.as_str() == "FAILED")
        );
    }
}

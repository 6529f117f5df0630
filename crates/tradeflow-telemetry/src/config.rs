//! What the telemetry is set up from: the environment, read through a lookup function so tests
//! pass a map.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The deployment stage (`deployment.environment.name`, the `stage` label).
pub const STAGE_ENV: &str = "TRADEFLOW_STAGE";
/// The stage of a process whose environment names none.
pub const DEFAULT_STAGE: &str = "local";
/// Per-flush budget in milliseconds (default 50).
pub const FLUSH_TIMEOUT_ENV: &str = "TELEMETRY_FLUSH_TIMEOUT_MS";
/// Default per-flush budget.
pub const DEFAULT_FLUSH_BUDGET: Duration = Duration::from_millis(50);

/// Longest flush budget accepted from the environment: a flush runs on every invocation.
const MAX_FLUSH_BUDGET: Duration = Duration::from_secs(10);

/// Which traces are recorded (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceSampling {
    /// A span with a parent follows the parent's decision (the sampled flag of the
    /// `traceparent` it came with), so a trace is kept or dropped whole; `root` decides for the
    /// rest. `false`: `root` decides for every span.
    pub parent_based: bool,
    /// The fraction of new traces kept, 0.0 to 1.0 (by trace id, so every function that decides
    /// for the same trace decides alike).
    pub root_ratio: f64,
}

impl Default for TraceSampling {
    /// `parentbased_always_on`, the OpenTelemetry default: a signal is rare (a few per scan), and
    /// its trace is what explains one signal's fan-out, so every one is kept whole. Lower it with
    /// `OTEL_TRACES_SAMPLER=parentbased_traceidratio` and `OTEL_TRACES_SAMPLER_ARG`.
    fn default() -> Self {
        TraceSampling {
            parent_based: true,
            root_ratio: 1.0,
        }
    }
}

impl TraceSampling {
    /// From `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (the standard names and values;
    /// the argument defaults to 1.0). An unknown sampler or a bad argument is a warning and
    /// the default.
    fn from_values(
        sampler: Option<&str>,
        arg: Option<&str>,
        warnings: &mut Vec<String>,
    ) -> TraceSampling {
        let Some(sampler) = sampler else {
            return TraceSampling::default();
        };
        let ratio = |warnings: &mut Vec<String>| match arg {
            None => 1.0,
            Some(raw) => match raw.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => r,
                _ => {
                    warnings.push(format!(
                        "OTEL_TRACES_SAMPLER_ARG={raw:?} is not a ratio from 0 to 1; using 1.0"
                    ));
                    1.0
                }
            },
        };
        let (parent_based, root_ratio) = match sampler.to_ascii_lowercase().as_str() {
            "always_on" => (false, 1.0),
            "always_off" => (false, 0.0),
            "traceidratio" => (false, ratio(warnings)),
            "parentbased_always_on" => (true, 1.0),
            "parentbased_always_off" => (true, 0.0),
            "parentbased_traceidratio" => (true, ratio(warnings)),
            other => {
                warnings.push(format!(
                    "OTEL_TRACES_SAMPLER={other:?} is not supported (always_on, always_off, \
                     traceidratio, parentbased_always_on, parentbased_always_off, \
                     parentbased_traceidratio); using parentbased_always_on"
                ));
                return TraceSampling::default();
            }
        };
        TraceSampling {
            parent_based,
            root_ratio,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// `service.name`: `OTEL_SERVICE_NAME`, else the name the function passed.
    pub service_name: String,
    /// `service.instance.id`: unique per process, so concurrent instances never overwrite each
    /// other's cumulative series.
    pub instance_id: String,
    /// `faas.name`: `AWS_LAMBDA_FUNCTION_NAME`, else the service name.
    pub faas_name: String,
    /// `cloud.region`: `AWS_REGION`.
    pub region: Option<String>,
    /// `deployment.environment.name` (the `stage` label): `TRADEFLOW_STAGE`, the deployment
    /// stage the template sets, so dev and prod series never merge; [`DEFAULT_STAGE`] when unset
    /// (a process on a laptop), so every series has one and the dashboards' stage variable
    /// finds it.
    pub stage: String,
    /// The full URL metrics are POSTed to; `None` means nothing is exported.
    pub metrics_endpoint: Option<String>,
    /// The full URL spans are POSTed to; `None` means no spans are recorded or exported.
    pub traces_endpoint: Option<String>,
    /// Which traces are recorded.
    pub sampling: TraceSampling,
    /// HTTP timeout of one export (also the exporter's retry budget).
    pub export_timeout: Duration,
    /// How long [`crate::Telemetry::flush`] waits at most.
    pub flush_budget: Duration,
    /// Problems found while reading the environment, logged once logging is up.
    pub warnings: Vec<String>,
}

impl TelemetryConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env(service_name: &str) -> Self {
        Self::from_lookup(service_name, |key| std::env::var(key).ok())
    }

    /// Reads the configuration through `lookup` (an empty value counts as unset).
    ///
    /// - endpoint: `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is used as is; else
    ///   `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/metrics`; neither set (or `OTEL_METRICS_EXPORTER=none`,
    ///   or `OTEL_SDK_DISABLED=true`): no exporter.
    /// - traces, opt-in: with `OTEL_TRACES_EXPORTER=otlp`, to `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    ///   as is, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`; also when
    ///   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set and `OTEL_TRACES_EXPORTER` is not. Off
    ///   otherwise (unset, `none`, or `OTEL_SDK_DISABLED=true`): the metrics-only backends
    ///   (vmagent, AMP, remote write) have no `/v1/traces`, and the OpenTelemetry default
    ///   (`otlp`) would fail every flush there.
    /// - sampling: `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` ([`TraceSampling`]).
    /// - flush budget: `TELEMETRY_FLUSH_TIMEOUT_MS` (1 ms … 10 s), default 50 ms.
    /// - export timeout: `OTEL_EXPORTER_OTLP_METRICS_TIMEOUT`, else `OTEL_EXPORTER_OTLP_TIMEOUT`
    ///   (milliseconds), else the flush budget.
    pub fn from_lookup(service_name: &str, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |key: &str| {
            lookup(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut warnings = Vec::new();

        let service_name = get("OTEL_SERVICE_NAME").unwrap_or_else(|| service_name.to_owned());
        let instance_id = lambda_log_stream_or_random_id(get("AWS_LAMBDA_LOG_STREAM_NAME"));
        let faas_name = get("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| service_name.clone());
        let region = get("AWS_REGION");
        let stage = get(STAGE_ENV).unwrap_or_else(|| DEFAULT_STAGE.to_owned());

        let disabled = get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || get("OTEL_METRICS_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
        let metrics_endpoint = if disabled {
            None
        } else if let Some(url) = get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") {
            Some(url)
        } else {
            get("OTEL_EXPORTER_OTLP_ENDPOINT").map(|base| signal_url(&base, "metrics"))
        };

        let sdk_disabled = get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let traces_url = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let traces_endpoint = match get("OTEL_TRACES_EXPORTER").map(|v| v.to_ascii_lowercase()) {
            _ if sdk_disabled => None,
            None => traces_url,
            Some(v) if v == "none" => None,
            Some(v) if v == "otlp" => {
                let url = traces_url.or_else(|| {
                    get("OTEL_EXPORTER_OTLP_ENDPOINT").map(|b| signal_url(&b, "traces"))
                });
                if url.is_none() {
                    warnings.push("OTEL_TRACES_EXPORTER=otlp without OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT; traces are off".into());
                }
                url
            }
            Some(other) => {
                warnings.push(format!(
                    "OTEL_TRACES_EXPORTER={other:?} is not supported (otlp, none); traces are off"
                ));
                None
            }
        };
        let sampling = TraceSampling::from_values(
            get("OTEL_TRACES_SAMPLER").as_deref(),
            get("OTEL_TRACES_SAMPLER_ARG").as_deref(),
            &mut warnings,
        );

        let flush_budget = match get(FLUSH_TIMEOUT_ENV) {
            None => DEFAULT_FLUSH_BUDGET,
            Some(raw) => match raw.parse::<u64>().map(Duration::from_millis) {
                Ok(d) if !d.is_zero() && d <= MAX_FLUSH_BUDGET => d,
                _ => {
                    warnings.push(format!(
                        "{FLUSH_TIMEOUT_ENV}={raw:?} is not a number of milliseconds in 1..=10000; using {} ms",
                        DEFAULT_FLUSH_BUDGET.as_millis()
                    ));
                    DEFAULT_FLUSH_BUDGET
                }
            },
        };

        let mut export_timeout = flush_budget;
        for key in [
            "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ] {
            if let Some(raw) = get(key) {
                match raw.parse::<u64>() {
                    Ok(ms) if ms > 0 => {
                        export_timeout = Duration::from_millis(ms);
                        break;
                    }
                    _ => warnings.push(format!(
                        "{key}={raw:?} is not a number of milliseconds; ignored"
                    )),
                }
            }
        }

        TelemetryConfig {
            service_name,
            instance_id,
            faas_name,
            region,
            stage,
            metrics_endpoint,
            traces_endpoint,
            sampling,
            export_timeout,
            flush_budget,
            warnings,
        }
    }
}

/// `base` + `/v1/<signal>`, as the OTLP spec builds a signal URL from
/// `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn signal_url(base: &str, signal: &str) -> String {
    format!("{}/v1/{signal}", base.trim_end_matches('/'))
}

/// The Lambda log stream name (one per execution environment) when there is one, else 16 random
/// hex digits (seeded by the process's random hasher keys, the time and the pid).
pub fn lambda_log_stream_or_random_id(log_stream: Option<String>) -> String {
    if let Some(stream) = log_stream {
        return stream;
    }
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    hasher.write_u128(nanos);
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> TelemetryConfig {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TelemetryConfig::from_lookup("signal-generator", |k| map.get(k).cloned())
    }

    #[test]
    fn without_an_endpoint_nothing_is_exported() {
        let c = config(&[]);
        assert_eq!(c.metrics_endpoint, None);
        assert_eq!(c.service_name, "signal-generator");
        assert_eq!(c.faas_name, "signal-generator");
        assert_eq!(c.flush_budget, DEFAULT_FLUSH_BUDGET);
        assert_eq!(c.export_timeout, DEFAULT_FLUSH_BUDGET);
        assert_eq!(c.instance_id.len(), 16);
        assert_eq!(c.stage, DEFAULT_STAGE);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn the_base_endpoint_gets_the_metrics_path() {
        let c = config(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318/opentelemetry/",
        )]);
        assert_eq!(
            c.metrics_endpoint.as_deref(),
            Some("http://127.0.0.1:4318/opentelemetry/v1/metrics")
        );
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "http://b:4318/custom",
            ),
        ]);
        assert_eq!(c.metrics_endpoint.as_deref(), Some("http://b:4318/custom"));
    }

    #[test]
    fn exporting_can_be_switched_off() {
        for off in [
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_SDK_DISABLED", "true"),
        ] {
            let c = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"), off]);
            assert_eq!(c.metrics_endpoint, None, "{off:?}");
        }
    }

    #[test]
    fn traces_are_opt_in_and_share_the_base_endpoint() {
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318/");
        assert_eq!(
            config(&[base]).traces_endpoint,
            None,
            "off unless asked for"
        );
        let c = config(&[base, ("OTEL_TRACES_EXPORTER", "otlp")]);
        assert_eq!(
            c.traces_endpoint.as_deref(),
            Some("http://a:4318/v1/traces")
        );
        assert_eq!(
            c.metrics_endpoint.as_deref(),
            Some("http://a:4318/v1/metrics")
        );
        let own = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4318/x");
        assert_eq!(
            config(&[base, own]).traces_endpoint.as_deref(),
            Some("http://t:4318/x")
        );
        for off in [
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_SDK_DISABLED", "true"),
        ] {
            assert_eq!(config(&[base, own, off]).traces_endpoint, None, "{off:?}");
        }
        let c = config(&[("OTEL_TRACES_EXPORTER", "otlp")]);
        assert_eq!((c.traces_endpoint, c.warnings.len()), (None, 1));
        let c = config(&[base, ("OTEL_TRACES_EXPORTER", "zipkin")]);
        assert_eq!((c.traces_endpoint, c.warnings.len()), (None, 1));
    }

    #[test]
    fn sampling_reads_the_standard_variables() {
        let sampling = |vars: &[(&str, &str)]| {
            let c = config(vars);
            (
                c.sampling.parent_based,
                c.sampling.root_ratio,
                c.warnings.len(),
            )
        };
        assert_eq!(sampling(&[]), (true, 1.0, 0));
        let s = |name: &'static str| ("OTEL_TRACES_SAMPLER", name);
        let arg = |v: &'static str| ("OTEL_TRACES_SAMPLER_ARG", v);
        assert_eq!(sampling(&[s("always_off")]), (false, 0.0, 0));
        assert_eq!(sampling(&[s("always_on")]), (false, 1.0, 0));
        assert_eq!(sampling(&[s("parentbased_always_off")]), (true, 0.0, 0));
        assert_eq!(
            sampling(&[s("parentbased_traceidratio"), arg("0.25")]),
            (true, 0.25, 0)
        );
        assert_eq!(sampling(&[s("traceidratio"), arg("0.5")]), (false, 0.5, 0));
        assert_eq!(sampling(&[s("traceidratio"), arg("2")]), (false, 1.0, 1));
        assert_eq!(sampling(&[s("xray")]), (true, 1.0, 1));
    }

    #[test]
    fn lambda_variables_name_the_resource() {
        let c = config(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "tradeflow-dev-signal-generator"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/25/[$LATEST]0123abcd"),
            ("AWS_REGION", "eu-west-1"),
            ("OTEL_SERVICE_NAME", "custom"),
            (STAGE_ENV, "prod"),
        ]);
        assert_eq!(c.stage, "prod");
        assert_eq!(c.service_name, "custom");
        assert_eq!(c.faas_name, "tradeflow-dev-signal-generator");
        assert_eq!(c.instance_id, "2026/11/25/[$LATEST]0123abcd");
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn budgets_come_from_the_environment_and_bad_values_fall_back() {
        let c = config(&[(FLUSH_TIMEOUT_ENV, "120")]);
        assert_eq!(c.flush_budget, Duration::from_millis(120));
        assert_eq!(c.export_timeout, Duration::from_millis(120));
        let c = config(&[
            (FLUSH_TIMEOUT_ENV, "120"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "30"),
        ]);
        assert_eq!(c.export_timeout, Duration::from_millis(30));
        let c = config(&[
            (FLUSH_TIMEOUT_ENV, "soon"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "x"),
        ]);
        assert_eq!(c.flush_budget, DEFAULT_FLUSH_BUDGET);
        assert_eq!(c.warnings.len(), 2);
        let c = config(&[(FLUSH_TIMEOUT_ENV, "0")]);
        assert_eq!(c.flush_budget, DEFAULT_FLUSH_BUDGET);
    }

    #[test]
    fn random_instance_ids_differ() {
        assert_ne!(
            lambda_log_stream_or_random_id(None),
            lambda_log_stream_or_random_id(None)
        );
    }
}

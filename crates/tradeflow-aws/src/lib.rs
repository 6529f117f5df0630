#![warn(missing_docs)]

//! DynamoDB and SQS adapters implementing the [`tradeflow_core::ports`].
//!
//! One store per table ([`DynamoPipelineStore`], [`DynamoLeaseStore`], [`DynamoExecutionStore`],
//! [`DynamoOrderStore`], [`DynamoCursorStore`]), the end of a run across three of them in one
//! transaction ([`DynamoRunLedger`]), a queue ([`SqsQueue`]) and a topic ([`SnsTopic`]) to send to. Items carry the
//! domain types' serde field names, mapped by `serde_dynamo` ([`item`]); SDK errors are classified into the ports' transient
//! and permanent errors ([`error`]); conditional-check failures are outcomes, never errors.
//!
//! The endpoint is never configured here: [`load_aws_config`] reads the standard environment,
//! `AWS_ENDPOINT_URL` included, so the same code talks to AWS and to the emulator.

mod dynamo;
pub mod error;
pub mod item;
pub mod market;
mod sns;
mod sqs;
pub mod tls;

pub use dynamo::{
    BY_PIPELINE_INDEX, DynamoCursorStore, DynamoExecutionStore, DynamoLeaseStore, DynamoOrderStore,
    DynamoPipelineStore, DynamoRunLedger, EXECUTION_RETENTION_SECS, EXECUTIONS_RUNNING_INDEX,
    LEASE_TTL_GRACE_SECS, Listed, PIPELINE_UPDATES_INDEX, RUN_SHARDS, StoredLease, UndecodableItem,
};
pub use error::{AdapterError, ErrorClass};
pub use sns::SnsTopic;
pub use sqs::{SqsQueue, resolve_queue_url, trace_attributes};

/// Re-exported so callers build clients with the same SDK versions.
pub use aws_sdk_dynamodb;
/// Re-exported so callers build clients with the same SDK versions.
pub use aws_sdk_secretsmanager;
/// Re-exported so callers build clients with the same SDK versions.
pub use aws_sdk_sns;
/// Re-exported so callers build clients with the same SDK versions.
pub use aws_sdk_sqs;

/// A configuration mistake found when loading the AWS configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AwsConfigError {
    /// An endpoint variable that is set, not blank, and not an `http://` or `https://` URL with
    /// a host (the SDK would ignore it or fail on the first call).
    #[error(
        "{variable}={value:?} is not an http:// or https:// URL with a host \
         (e.g. http://127.0.0.1:5000); unset it to use AWS's own endpoints"
    )]
    InvalidEndpointUrl {
        /// `AWS_ENDPOINT_URL` or a service's `AWS_ENDPOINT_URL_<SERVICE>`.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// Neither `AWS_REGION` nor `AWS_DEFAULT_REGION` is set (Lambda sets both).
    #[error("no region: set AWS_REGION (Lambda sets it; locally `source local/env.sh`)")]
    MissingRegion,
}

/// The endpoint variables the functions' clients read.
const ENDPOINT_VARIABLES: [&str; 4] = [
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_SNS",
    "AWS_ENDPOINT_URL_DYNAMODB",
];

/// Checks the endpoint variables `lookup` gives: unset or blank is fine (blank means unset),
/// anything else must be an `http://` or `https://` URL with a host.
pub fn check_endpoint_variables(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(), AwsConfigError> {
    for variable in ENDPOINT_VARIABLES {
        let Some(value) = lookup(variable) else {
            continue;
        };
        if value.trim().is_empty() {
            continue;
        }
        let host = value
            .strip_prefix("http://")
            .or_else(|| value.strip_prefix("https://"))
            .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
        let valid = host.is_some_and(|h| {
            !h.is_empty() && !h.starts_with(':') && !h.chars().any(char::is_whitespace)
        });
        if !valid {
            return Err(AwsConfigError::InvalidEndpointUrl { variable, value });
        }
    }
    Ok(())
}

/// The environment's service settings with blank values treated as unset: the SDK takes an
/// empty `AWS_ENDPOINT_URL` as an endpoint and panics on the first call.
#[derive(Debug)]
struct BlankIsUnset(aws_config::SdkConfig);

impl aws_types::service_config::LoadServiceConfig for BlankIsUnset {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        self.0
            .service_config()?
            .load_config(key)
            .filter(|value| !value.trim().is_empty())
    }
}

/// Reads one environment variable.
type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The environment's `AWS_ENDPOINT_URL_<SERVICE>` / `AWS_ENDPOINT_URL` for the SDK clients,
/// blank counting as unset, without the profile files of the default loader.
struct EnvOnly(Lookup);

impl std::fmt::Debug for EnvOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnvOnly")
    }
}

impl aws_types::service_config::LoadServiceConfig for EnvOnly {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        // As the SDK's own: `<ENV>_<SERVICE ID, upper case, spaces as _>` first, then `<ENV>`.
        let service = key.service_id().to_ascii_uppercase().replace(' ', "_");
        let non_blank = |v: String| (!v.trim().is_empty()).then_some(v);
        (self.0)(&format!("{}_{service}", key.env()))
            .and_then(non_blank)
            .or_else(|| (self.0)(key.env()).and_then(non_blank))
    }
}

/// The functions' AWS configuration on Lambda: region, credentials and endpoints from the
/// environment only (Lambda sets `AWS_REGION` and the role's `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; an emulator adds `AWS_ENDPOINT_URL`), the
/// functions' HTTPS client ([`tls::https_client`]), standard retries, the SDK's 3.1 s connect
/// timeout. Unlike [`load_aws_config`] it never reads profile files and links none of the
/// default chain's other providers (profiles, SSO, web identity through STS, ECS, IMDS), which
/// the functions never use: a smaller binary and a shorter init (BENCHMARKS.md, "Cold start and
/// footprint"). Tools and tests, which run with a profile, keep [`load_aws_config`].
pub fn lambda_aws_config() -> Result<aws_config::SdkConfig, AwsConfigError> {
    let roots = tls::TrustRoots::from_lookup(|k| std::env::var(k).ok());
    lambda_aws_config_from(|k| std::env::var(k).ok(), &roots)
}

/// [`lambda_aws_config`] over the variables `lookup` gives (tests) and the given roots.
pub fn lambda_aws_config_from(
    lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    roots: &tls::TrustRoots,
) -> Result<aws_config::SdkConfig, AwsConfigError> {
    use aws_config::environment::EnvironmentVariableCredentialsProvider;
    use aws_types::sdk_config::SharedCredentialsProvider;

    check_endpoint_variables(&lookup)?;
    let non_blank = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
    let region = non_blank("AWS_REGION")
        .or_else(|| non_blank("AWS_DEFAULT_REGION"))
        .ok_or(AwsConfigError::MissingRegion)?;
    let endpoint = non_blank("AWS_ENDPOINT_URL");
    let mut builder = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .identity_cache(aws_config::identity::IdentityCache::lazy().build())
        .http_client(tls::https_client(roots))
        .retry_config(aws_config::retry::RetryConfig::standard())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_millis(3_100))
                .build(),
        )
        .service_config(EnvOnly(Box::new(lookup)));
    builder.set_endpoint_url(endpoint);
    Ok(builder.build())
}

/// Loads the shared AWS configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL`...) with the latest behavior version and the functions' HTTPS client
/// ([`tls::https_client`]: rustls on ring, compiled-in roots). Call once at start-up.
///
/// A blank endpoint variable counts as unset; one that is not a URL is an error
/// ([`check_endpoint_variables`]) rather than a panic or a silently ignored setting.
pub async fn load_aws_config() -> Result<aws_config::SdkConfig, AwsConfigError> {
    let roots = tls::TrustRoots::from_lookup(|k| std::env::var(k).ok());
    load_aws_config_with(&roots).await
}

/// [`load_aws_config`] with the given trusted roots (tests: a local CA).
pub async fn load_aws_config_with(
    roots: &tls::TrustRoots,
) -> Result<aws_config::SdkConfig, AwsConfigError> {
    check_endpoint_variables(|k| std::env::var(k).ok())?;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(tls::https_client(roots))
        .load()
        .await;
    if sdk.service_config().is_none() {
        return Ok(sdk);
    }
    let filtered = BlankIsUnset(sdk.clone());
    Ok(sdk.into_builder().service_config(filtered).build())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lambda_config(vars: &[(&str, &str)]) -> Result<aws_config::SdkConfig, AwsConfigError> {
        let vars: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        lambda_aws_config_from(
            move |k| vars.get(k).cloned(),
            &tls::TrustRoots::from_lookup(|_| None),
        )
    }

    fn endpoint_of(sdk: &aws_config::SdkConfig, service: &str) -> Option<String> {
        let key = aws_types::service_config::ServiceConfigKey::builder()
            .service_id(service)
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .unwrap();
        sdk.service_config()?.load_config(key)
    }

    /// The functions' configuration: the region from `AWS_REGION` (or `AWS_DEFAULT_REGION`),
    /// the endpoint from `AWS_ENDPOINT_URL_<SERVICE>` before `AWS_ENDPOINT_URL`, blank counting
    /// as unset, and a clear error instead of a default region or a panic.
    #[test]
    fn the_lambda_config_comes_from_the_environment_alone() {
        let sdk = lambda_config(&[("AWS_REGION", "eu-west-1")]).unwrap();
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(sdk.endpoint_url(), None);
        assert_eq!(endpoint_of(&sdk, "SQS"), None);
        assert!(sdk.credentials_provider().is_some());

        let sdk = lambda_config(&[
            ("AWS_DEFAULT_REGION", "us-east-2"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
            ("AWS_ENDPOINT_URL_SQS", "  "),
        ])
        .unwrap();
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("us-east-2"));
        assert_eq!(sdk.endpoint_url(), Some("http://127.0.0.1:5000"));
        assert_eq!(
            endpoint_of(&sdk, "DynamoDB").as_deref(),
            Some("http://127.0.0.1:8000")
        );
        assert_eq!(
            endpoint_of(&sdk, "SQS").as_deref(),
            Some("http://127.0.0.1:5000")
        );

        assert_eq!(
            lambda_config(&[("AWS_REGION", " ")]).unwrap_err(),
            AwsConfigError::MissingRegion
        );
        let bad = lambda_config(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "localhost:5000"),
        ]);
        assert!(
            matches!(bad, Err(AwsConfigError::InvalidEndpointUrl { .. })),
            "{bad:?}"
        );
    }

    #[test]
    fn endpoint_variables_are_blank_or_urls() {
        let check = |value: &str| {
            check_endpoint_variables(|k| (k == "AWS_ENDPOINT_URL").then(|| value.to_owned()))
        };
        for ok in [
            "",
            "  ",
            "http://127.0.0.1:5000",
            "https://sqs.eu-west-1.amazonaws.com/",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "localhost:5000",
            "127.0.0.1:5000",
            "http://",
            "http://:5000",
            "ftp://x",
            "htp//x",
        ] {
            let err = check(bad).unwrap_err();
            assert!(err.to_string().contains("AWS_ENDPOINT_URL="), "{err}");
        }
        assert!(check_endpoint_variables(|_| None).is_ok());
        let err = check_endpoint_variables(|k| (k == "AWS_ENDPOINT_URL_SQS").then(|| "sqs".into()))
            .unwrap_err();
        assert!(err.to_string().contains("AWS_ENDPOINT_URL_SQS"), "{err}");
    }
}

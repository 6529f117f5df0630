#![warn(missing_docs)]

//! DynamoDB and SQS adapters implementing the [`tradeflow_core::ports`].
//!
//! One store per table ([`DynamoPipelineStore`], [`DynamoLeaseStore`], [`DynamoExecutionStore`],
//! [`DynamoOrderStore`], [`DynamoCursorStore`]), the end of a run across three of them in one
//! transaction ([`DynamoRunLedger`]), and one queue type ([`SqsQueue`]). Items carry the
//! domain types' serde field names, mapped by `serde_dynamo` ([`item`]); SDK errors are classified into the ports' transient
//! and permanent errors ([`error`]); conditional-check failures are outcomes, never errors.
//!
//! The endpoint is never configured here: [`load_aws_config`] reads the standard environment,
//! `AWS_ENDPOINT_URL` included, so the same code talks to AWS and to the emulator.

mod dynamo;
pub mod error;
pub mod item;
pub mod market;
mod sqs;
pub mod tls;

pub use dynamo::{
    DynamoCursorStore, DynamoExecutionStore, DynamoLeaseStore, DynamoOrderStore,
    DynamoPipelineStore, DynamoRunLedger, EXECUTION_RETENTION_SECS, LEASE_TTL_GRACE_SECS,
    PIPELINE_UPDATES_INDEX,
};
pub use error::{AdapterError, ErrorClass};
pub use sqs::{SqsQueue, resolve_queue_url};

/// Re-exported so callers build clients with the same SDK versions.
pub use aws_sdk_dynamodb;
/// Re-exported so callers build clients with the same SDK versions.
pub use aws_sdk_secretsmanager;
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
}

/// The endpoint variables the functions' clients read.
const ENDPOINT_VARIABLES: [&str; 3] = [
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SQS",
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

#![warn(missing_docs)]

//! DynamoDB and SQS adapters implementing the [`tradeflow_core::ports`].
//!
//! One store per table ([`DynamoPipelineStore`], [`DynamoLeaseStore`], [`DynamoExecutionStore`],
//! [`DynamoOrderStore`], [`DynamoCursorStore`]) and one queue type ([`SqsQueue`]). Items carry the
//! domain types' serde field names, mapped by `serde_dynamo` ([`item`]); SDK errors are classified into the ports' transient
//! and permanent errors ([`error`]); conditional-check failures are outcomes, never errors.
//!
//! The endpoint is never configured here: [`load_aws_config`] reads the standard environment,
//! `AWS_ENDPOINT_URL` included, so the same code talks to AWS and to the emulator.

mod dynamo;
pub mod error;
pub mod item;
mod sqs;

pub use dynamo::{
    DynamoCursorStore, DynamoExecutionStore, DynamoLeaseStore, DynamoOrderStore,
    DynamoPipelineStore, EXECUTION_RETENTION_SECS, LEASE_TTL_GRACE_SECS,
};
pub use error::{AdapterError, ErrorClass};
pub use sqs::{SqsQueue, resolve_queue_url};

/// Re-exported so callers build clients with the same SDK versions.
pub use aws_sdk_dynamodb;
/// Re-exported so callers build clients with the same SDK versions.
pub use aws_sdk_sqs;

/// Loads the shared AWS configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL`...) with the latest behavior version. Call once at start-up.
pub async fn load_aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

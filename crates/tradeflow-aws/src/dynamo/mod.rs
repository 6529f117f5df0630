//! DynamoDB adapters, one per table.

mod cursors;
mod executions;
pub(crate) mod expr;
mod leases;
mod ledger;
mod listing;
mod orders;
mod pipelines;

pub use cursors::DynamoCursorStore;
pub use executions::{
    BY_PIPELINE_INDEX, DynamoExecutionStore, EXECUTION_RETENTION_SECS, RUN_SHARDS,
    RUNNING_INDEX as EXECUTIONS_RUNNING_INDEX,
};
pub use leases::{DynamoLeaseStore, LEASE_TTL_GRACE_SECS, StoredLease};
pub use ledger::DynamoRunLedger;
pub use listing::{Listed, UndecodableItem};
pub use orders::DynamoOrderStore;
pub use pipelines::{DynamoPipelineStore, UPDATES_INDEX as PIPELINE_UPDATES_INDEX};

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use tradeflow_core::error::StoreError;

use crate::error::store_error;

/// The result of a conditional write: `Ok(true)` when it was applied, `Ok(false)` when its
/// condition did not hold (`ConditionalCheckFailedException`, an outcome, not an error), and the
/// classified error otherwise.
pub(crate) fn condition_held<T, E>(
    operation: &'static str,
    result: Result<T, SdkError<E, HttpResponse>>,
) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(err)
            if err.as_service_error().and_then(|e| e.code())
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(err) => Err(store_error(operation, err)),
    }
}

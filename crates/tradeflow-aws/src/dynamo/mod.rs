//! DynamoDB adapters, one per table.

mod cursors;
mod executions;
pub(crate) mod expr;
mod leases;
mod orders;
mod pipelines;

pub use cursors::DynamoCursorStore;
pub use executions::{DynamoExecutionStore, EXECUTION_RETENTION_SECS};
pub use leases::{DynamoLeaseStore, LEASE_TTL_GRACE_SECS};
pub use orders::DynamoOrderStore;
pub use pipelines::DynamoPipelineStore;

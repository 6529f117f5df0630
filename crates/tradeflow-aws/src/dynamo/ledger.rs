//! The end of a run in one DynamoDB transaction (`TransactWriteItems`): the final execution record
//! (only over this attempt's RUNNING record), the paper order (only if none with its id exists)
//! and the lease deleted (only if this execution holds it). One request where separate writes
//! took three, and never an order beside an unfinished run or a finished run's lease left held.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use tradeflow_core::error::StoreError;
use tradeflow_core::execution::ExecutionStatus;
use tradeflow_core::ports::{Lease, RunEnd, RunEndOutcome, RunLedger};

use super::executions::{self, record_attributes, status_value};
use super::expr::{Expr, update_from_item};
use super::{leases, orders};
use crate::error::{store_error, store_permanent};
use crate::item::to_item;

const OPERATION: &str = "TransactWriteItems";

/// [`RunLedger`] on the executions, orders and leases tables.
#[derive(Debug, Clone)]
pub struct DynamoRunLedger {
    client: Client,
    executions_table: String,
    orders_table: String,
    leases_table: String,
}

impl DynamoRunLedger {
    /// A ledger on the three tables.
    pub fn new(
        client: Client,
        executions_table: impl Into<String>,
        orders_table: impl Into<String>,
        leases_table: impl Into<String>,
    ) -> Self {
        DynamoRunLedger {
            client,
            executions_table: executions_table.into(),
            orders_table: orders_table.into(),
            leases_table: leases_table.into(),
        }
    }
}

/// What each item of the transaction is, to read its cancellation reason.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    Record,
    Order,
    Lease,
}

fn built<T, E: std::fmt::Display>(result: Result<T, E>) -> Result<T, StoreError> {
    result.map_err(|e| store_permanent(OPERATION, e.to_string()))
}

#[async_trait]
impl RunLedger for DynamoRunLedger {
    async fn end_run(&self, end: &RunEnd<'_>) -> Result<RunEndOutcome, StoreError> {
        let record = end.record;
        let mut parts = vec![Part::Record];
        let mut items = Vec::with_capacity(3);

        let attrs = record_attributes(record, &["attempts", "created_at"])?;
        let mut e = Expr::default();
        let update = update_from_item(&mut e, attrs, &[]);
        let condition = format!(
            "{} = {} AND {} = {}",
            e.name("status"),
            e.value("running", status_value(ExecutionStatus::Running)),
            e.name("attempts"),
            e.value("attempt", AttributeValue::N(record.attempts.to_string())),
        );
        let (names, values) = e.into_parts();
        let update = built(
            Update::builder()
                .table_name(&self.executions_table)
                .key(
                    executions::KEY,
                    AttributeValue::S(record.execution_id.clone()),
                )
                .update_expression(update)
                .condition_expression(condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .build(),
        )?;
        items.push(TransactWriteItem::builder().update(update).build());

        if let Some(order) = end.order {
            let item = to_item(order).map_err(|e| store_permanent(OPERATION, e))?;
            let mut e = Expr::default();
            let condition = format!("attribute_not_exists({})", e.name(orders::KEY));
            let (names, _) = e.into_parts();
            let put = built(
                Put::builder()
                    .table_name(&self.orders_table)
                    .set_item(Some(item))
                    .condition_expression(condition)
                    .set_expression_attribute_names(names)
                    .build(),
            )?;
            items.push(TransactWriteItem::builder().put(put).build());
            parts.push(Part::Order);
        }

        if end.release_lease {
            let mut e = Expr::default();
            let condition = format!(
                "{} = {}",
                e.name("execution_id"),
                e.value("eid", AttributeValue::S(record.execution_id.clone()))
            );
            let (names, values) = e.into_parts();
            let delete = built(
                Delete::builder()
                    .table_name(&self.leases_table)
                    .key(
                        leases::KEY,
                        AttributeValue::S(Lease::key(&record.pipeline_id, &record.ticker)),
                    )
                    .condition_expression(condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .build(),
            )?;
            items.push(TransactWriteItem::builder().delete(delete).build());
            parts.push(Part::Lease);
        }

        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(RunEndOutcome::Written),
            Err(err) => err,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            err.as_service_error()
        else {
            return Err(store_error(OPERATION, err));
        };
        // One reason per item, in order: `None` for the items that did not cancel it.
        let failed: Vec<Part> = cancelled
            .cancellation_reasons()
            .iter()
            .zip(&parts)
            .filter(|(reason, _)| reason.code() == Some("ConditionalCheckFailed"))
            .map(|(_, part)| *part)
            .collect();
        for (part, outcome) in [
            (Part::Record, RunEndOutcome::TakenOver),
            (Part::Order, RunEndOutcome::OrderExists),
            (Part::Lease, RunEndOutcome::LeaseNotOurs),
        ] {
            if failed.contains(&part) {
                return Ok(outcome);
            }
        }
        // Cancelled for another reason: a conflicting transaction on one of the items or
        // throttling comes right again; anything else (a validation error, e.g. an item over
        // 400 KB) does not.
        let transient = cancelled.cancellation_reasons().iter().any(|r| {
            matches!(
                r.code(),
                Some(
                    "TransactionConflict"
                        | "ThrottlingError"
                        | "ProvisionedThroughputExceeded"
                        | "RequestLimitExceeded"
                )
            )
        });
        let source: tradeflow_core::error::BoxError = Box::new(err);
        Err(if transient {
            StoreError::Transient {
                operation: OPERATION,
                source,
            }
        } else {
            StoreError::Permanent {
                operation: OPERATION,
                source,
            }
        })
    }
}

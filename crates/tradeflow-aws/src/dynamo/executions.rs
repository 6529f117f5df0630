//! [`ExecutionStore`] on the executions table (key `execution_id`, S; GSI `by-pipeline` on
//! `pipeline_id` + `created_at`; sparse GSI `running` on `run_shard` + `in_progress_until`,
//! keys only).
//!
//! Item: the [`ExecutionRecord`] with its serde field names (`None` fields absent), plus `ttl`
//! (N, `created_at` + 90 days) and, while RUNNING, `run_shard` (N, 0 to [`RUN_SHARDS`] - 1,
//! from the execution id), both ignored when decoding. `run_shard` and `in_progress_until` exist
//! only while a run is in progress, so the `running` index holds exactly the RUNNING records,
//! spread over [`RUN_SHARDS`] partitions (one constant key would put every start and end of the
//! whole system on one index partition). Every state change is one conditional
//! write, after the idempotency pattern of Powertools' DynamoDB persistence layer: absent, or
//! released, or in progress past its in-progress expiry.

use super::condition_held;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use tradeflow_core::error::StoreError;
use tradeflow_core::execution::{ExecutionRecord, ExecutionRequest, ExecutionStatus};
use tradeflow_core::ports::{BeginOutcome, ExecutionStore};

use super::expr::{Expr, update_from_item};
use super::listing::{Listed, UndecodableItem, key_of, read_all};
use crate::error::{store_error, store_permanent};
use crate::item::{Item, from_item, get_i64, get_s, to_item};

pub(crate) const KEY: &str = "execution_id";
/// The sparse index of RUNNING records (`run_shard` + `in_progress_until`, keys only).
pub const RUNNING_INDEX: &str = "running";
/// How many partitions the `running` index's records are spread over.
pub const RUN_SHARDS: u32 = 8;
const RUN_SHARD: &str = "run_shard";
/// Attributes of the item that are not the record's.
const NOT_RECORD: [&str; 2] = ["ttl", RUN_SHARD];

/// The `running` index partition of an execution (FNV-1a of its id).
pub fn run_shard(execution_id: &str) -> u32 {
    let hash = execution_id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash % RUN_SHARDS
}
const ENTITY: &str = "execution";
/// How long DynamoDB keeps an execution record after it was created.
pub const EXECUTION_RETENTION_SECS: i64 = 90 * 86_400;

/// Execution records; the conditional writes make a redelivered request run at most once at a
/// time and never after it finished.
#[derive(Debug, Clone)]
pub struct DynamoExecutionStore {
    client: Client,
    table: String,
}

impl DynamoExecutionStore {
    /// A store on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoExecutionStore {
            client,
            table: table.into(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

/// The executions table's index by pipeline (infra/template.yaml): partition key `pipeline_id`,
/// sort key `created_at`.
pub const BY_PIPELINE_INDEX: &str = "by-pipeline";

impl DynamoExecutionStore {
    /// Every execution record, or those of one pipeline (a Query of [`BY_PIPELINE_INDEX`]), in
    /// the table's order; each decoded as [`ExecutionStore::get_execution`] decodes it, one
    /// that does not with its key and the reason (operators' listings).
    pub async fn list(
        &self,
        pipeline_id: Option<&str>,
    ) -> Result<Vec<Listed<ExecutionRecord>>, StoreError> {
        let query = pipeline_id.map(|p| (BY_PIPELINE_INDEX, "pipeline_id", p));
        let items = read_all(&self.client, &self.table, query).await?;
        Ok(items
            .into_iter()
            .map(|mut item| {
                let key = key_of(&item, KEY);
                for attr in NOT_RECORD {
                    item.remove(attr);
                }
                from_item(item).map_err(|e| UndecodableItem {
                    key,
                    reason: e.to_string(),
                })
            })
            .collect())
    }
}

pub(crate) fn status_value(status: ExecutionStatus) -> AttributeValue {
    AttributeValue::S(status.as_str().to_owned())
}

fn corrupt(execution_id: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        entity: ENTITY,
        key: execution_id.to_owned(),
        reason: reason.into(),
    }
}

/// The record's attributes minus the ones a write must not overwrite.
pub(crate) fn record_attributes(
    record: &ExecutionRecord,
    skip: &[&str],
) -> Result<Item, StoreError> {
    let mut item = to_item(record).map_err(|e| store_permanent("UpdateItem", e))?;
    item.remove(KEY);
    // In the `running` index while in progress, out of it (removed) once not.
    let shard = match record.in_progress_until {
        Some(_) => AttributeValue::N(run_shard(&record.execution_id).to_string()),
        None => AttributeValue::Null(true),
    };
    item.insert(RUN_SHARD.to_owned(), shard);
    for attr in skip {
        item.remove(*attr);
    }
    Ok(item)
}

/// Why `begin`'s condition failed, from the stored record.
fn begin_refused(execution_id: &str, old: Option<&Item>) -> Result<BeginOutcome, StoreError> {
    let old = old.ok_or_else(|| corrupt(execution_id, "begin refused but no item was returned"))?;
    let raw = get_s(old, "status").ok_or_else(|| corrupt(execution_id, "status is missing"))?;
    let status = ExecutionStatus::parse(raw)
        .ok_or_else(|| corrupt(execution_id, format!("unknown status {raw:?}")))?;
    match status {
        s if s.is_terminal() => Ok(BeginOutcome::AlreadyFinished(s)),
        ExecutionStatus::Running => Ok(BeginOutcome::InProgress {
            until: get_i64(old, "in_progress_until").unwrap_or(0),
        }),
        other => Err(corrupt(
            execution_id,
            format!("begin refused on a {} record", other.as_str()),
        )),
    }
}

#[async_trait]
impl ExecutionStore for DynamoExecutionStore {
    async fn begin(
        &self,
        request: &ExecutionRequest,
        now: i64,
        in_progress_until: i64,
    ) -> Result<BeginOutcome, StoreError> {
        let id = request.execution_id.as_str();
        let running = ExecutionRecord::started(request, now, 0, in_progress_until);
        let attrs = record_attributes(&running, &["attempts", "created_at"])?;
        let mut e = Expr::default();
        let created = e.name("created_at");
        let ttl = e.name("ttl");
        let attempts = e.name("attempts");
        let now_v = e.value("now", AttributeValue::N(now.to_string()));
        let ttl_v = e.value(
            "ttl",
            AttributeValue::N(now.saturating_add(EXECUTION_RETENTION_SECS).to_string()),
        );
        let zero = e.value("zero", AttributeValue::N("0".into()));
        let one = e.value("one", AttributeValue::N("1".into()));
        let update = update_from_item(
            &mut e,
            attrs,
            &[
                format!("{created} = if_not_exists({created}, {now_v})"),
                format!("{ttl} = if_not_exists({ttl}, {ttl_v})"),
                format!("{attempts} = if_not_exists({attempts}, {zero}) + {one}"),
            ],
        );
        let condition = format!(
            "attribute_not_exists({key}) OR {status} = {pending} \
             OR ({status} = {running} AND {until} < {now_v})",
            key = e.name(KEY),
            status = e.name("status"),
            pending = e.value("pending", status_value(ExecutionStatus::Pending)),
            running = e.value("running", status_value(ExecutionStatus::Running)),
            until = e.name("in_progress_until"),
        );
        let (names, values) = e.into_parts();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(id.to_owned()))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                let attempt = output
                    .attributes()
                    .and_then(|a| get_i64(a, "attempts"))
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| corrupt(id, "attempts missing from the updated record"))?;
                Ok(BeginOutcome::Started { attempt })
            }
            Err(err) => {
                if let Some(UpdateItemError::ConditionalCheckFailedException(ccf)) =
                    err.as_service_error()
                {
                    return begin_refused(id, ccf.item());
                }
                Err(store_error("UpdateItem", err))
            }
        }
    }

    /// Writes every attribute of `record` except `created_at` (the first attempt's stays) and
    /// `attempts` (equal by the condition); `None` fields are removed.
    async fn finish(&self, record: &ExecutionRecord) -> Result<bool, StoreError> {
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
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(record.execution_id.clone()))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .send()
            .await;
        let written = condition_held("UpdateItem", result)?;
        if !written {
            tracing::debug!(
                execution_id = %record.execution_id,
                attempt = record.attempts,
                "execution no longer this attempt's RUNNING record; finish not written"
            );
        }
        Ok(written)
    }

    async fn release(&self, execution_id: &str, attempt: u32) -> Result<(), StoreError> {
        let mut e = Expr::default();
        let status = e.name("status");
        let update = format!(
            "SET {status} = {} REMOVE {}, {}",
            e.value("pending", status_value(ExecutionStatus::Pending)),
            e.name("in_progress_until"),
            e.name(RUN_SHARD),
        );
        let condition = format!(
            "{status} = {} AND {} = {}",
            e.value("running", status_value(ExecutionStatus::Running)),
            e.name("attempts"),
            e.value("attempt", AttributeValue::N(attempt.to_string())),
        );
        let (names, values) = e.into_parts();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(execution_id.to_owned()))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .send()
            .await;
        if !condition_held("UpdateItem", result)? {
            tracing::debug!(
                %execution_id,
                attempt,
                "execution no longer this attempt's RUNNING record; release is a no-op"
            );
        }
        Ok(())
    }

    async fn get_execution(
        &self,
        execution_id: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(execution_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        match output.item {
            None => Ok(None),
            Some(mut item) => {
                for attr in NOT_RECORD {
                    item.remove(attr);
                }
                from_item(item)
                    .map(Some)
                    .map_err(|e| corrupt(execution_id, e.to_string()))
            }
        }
    }

    /// One Query of the `running` index per shard (eventually consistent: a run that just
    /// ended may still be listed; the sweep reads each record before ending it).
    async fn overdue(&self, before: i64, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut found: Vec<(i64, String)> = Vec::new();
        for shard in 0..RUN_SHARDS {
            let mut start = None;
            let mut taken = 0;
            loop {
                let page_limit =
                    i32::try_from(limit.saturating_sub(taken).clamp(1, 1_000)).unwrap_or(1_000);
                let output = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(RUNNING_INDEX)
                    .key_condition_expression("#shard = :shard AND #until < :before")
                    .expression_attribute_names("#shard", RUN_SHARD)
                    .expression_attribute_names("#until", "in_progress_until")
                    .expression_attribute_values(":shard", AttributeValue::N(shard.to_string()))
                    .expression_attribute_values(":before", AttributeValue::N(before.to_string()))
                    .limit(page_limit)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| store_error("Query", e))?;
                for item in output.items() {
                    if let (Some(id), Some(until)) =
                        (get_s(item, KEY), get_i64(item, "in_progress_until"))
                    {
                        found.push((until, id.to_owned()));
                        taken += 1;
                    }
                }
                match output.last_evaluated_key {
                    Some(key) if taken < limit => start = Some(key),
                    _ => break,
                }
            }
        }
        found.sort();
        Ok(found.into_iter().take(limit).map(|(_, id)| id).collect())
    }
}

//! [`LeaseStore`] on the leases table (key `lease_key`, S).
//!
//! Item: `lease_key` (`<pipeline_id>#<ticker>`), `pipeline_id`, `ticker`, `execution_id`,
//! `expires_at` (N, Unix seconds), `enqueued` (BOOL) and `ttl` (N, `expires_at` + 1 day) so that
//! DynamoDB deletes old leases. Expiry is always checked on read too: TTL deletion is lazy.
//!
//! The dispatcher claims a lease (`enqueued` false) and marks it enqueued once its request is on
//! the queue, or releases it when the request could not be sent; the executor holds it (extending
//! `expires_at` to its run's in-progress expiry) and releases it when the run ended.

use super::condition_held;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use tradeflow_core::error::StoreError;
use tradeflow_core::ports::{ClaimOutcome, HoldOutcome, Lease, LeaseStore};
use tradeflow_core::vocab::Ticker;

use super::expr::Expr;
use super::listing::{Listed, UndecodableItem, key_of, read_all};
use crate::error::store_error;
use crate::item::{Item, get_bool, get_i64, get_s};

pub(crate) const KEY: &str = "lease_key";
const ENTITY: &str = "lease";
/// How long DynamoDB keeps a lease after it expired.
pub const LEASE_TTL_GRACE_SECS: i64 = 86_400;

/// Leases: at most one active run per (pipeline, ticker).
#[derive(Debug, Clone)]
pub struct DynamoLeaseStore {
    client: Client,
    table: String,
}

impl DynamoLeaseStore {
    /// A store on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoLeaseStore {
            client,
            table: table.into(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Marks a lease of ours started (the longer-expiry case of `hold`), only if still ours.
    async fn set_started(&self, lease: &Lease) -> Result<(), StoreError> {
        let key = Lease::key(&lease.pipeline_id, &lease.ticker);
        let mut e = Expr::default();
        let update = format!(
            "SET {} = {}",
            e.name("enqueued"),
            e.value("true", AttributeValue::Bool(true))
        );
        let condition = format!(
            "{} = {}",
            e.name("execution_id"),
            e.value("eid", AttributeValue::S(lease.execution_id.clone()))
        );
        let (names, values) = e.into_parts();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(key.clone()))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .send()
            .await;
        if !condition_held("UpdateItem", result)? {
            tracing::debug!(
                lease_key = %key,
                execution_id = %lease.execution_id,
                "lease no longer ours; not marked started"
            );
        }
        Ok(())
    }
}

/// A stored lease as an operator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLease {
    /// The (pipeline, ticker), its holder and expiry.
    pub lease: Lease,
    /// Whether the run has started (the executor's hold) rather than only been claimed.
    pub started: bool,
}

impl DynamoLeaseStore {
    /// Every lease item, expired ones included (TTL deletion is lazy: compare
    /// `lease.expires_at` with the clock), one that lacks an attribute with its key and why.
    pub async fn list_all(&self) -> Result<Vec<Listed<StoredLease>>, StoreError> {
        let items = read_all(&self.client, &self.table, None).await?;
        Ok(items.iter().map(decode_lease).collect())
    }
}

fn decode_lease(item: &Item) -> Listed<StoredLease> {
    let key = key_of(item, KEY);
    let bad = |reason: String| UndecodableItem {
        key: key.clone(),
        reason,
    };
    let field = |name: &str| get_s(item, name).ok_or_else(|| bad(format!("{name} is missing")));
    let ticker = Ticker::parse(field("ticker")?).map_err(|e| bad(e.to_string()))?;
    Ok(StoredLease {
        lease: Lease {
            pipeline_id: field("pipeline_id")?.to_owned(),
            ticker,
            execution_id: field("execution_id")?.to_owned(),
            expires_at: get_i64(item, "expires_at")
                .ok_or_else(|| bad("expires_at is missing".into()))?,
        },
        started: get_bool(item, "enqueued") == Some(true),
    })
}

fn lease_item(lease: &Lease) -> Item {
    Item::from([
        (
            KEY.to_owned(),
            AttributeValue::S(Lease::key(&lease.pipeline_id, &lease.ticker)),
        ),
        (
            "pipeline_id".to_owned(),
            AttributeValue::S(lease.pipeline_id.clone()),
        ),
        (
            "ticker".to_owned(),
            AttributeValue::S(lease.ticker.as_str().to_owned()),
        ),
        (
            "execution_id".to_owned(),
            AttributeValue::S(lease.execution_id.clone()),
        ),
        (
            "expires_at".to_owned(),
            AttributeValue::N(lease.expires_at.to_string()),
        ),
        ("enqueued".to_owned(), AttributeValue::Bool(false)),
        (
            "ttl".to_owned(),
            AttributeValue::N(
                lease
                    .expires_at
                    .saturating_add(LEASE_TTL_GRACE_SECS)
                    .to_string(),
            ),
        ),
    ])
}

/// What the stored lease that failed our claim means for us.
fn outcome_from_holder(lease: &Lease, old: Option<&Item>) -> Result<ClaimOutcome, StoreError> {
    let key = Lease::key(&lease.pipeline_id, &lease.ticker);
    let corrupt = |reason: &str| StoreError::Corrupt {
        entity: ENTITY,
        key: key.clone(),
        reason: reason.to_owned(),
    };
    let old =
        old.ok_or_else(|| corrupt("the claim's condition failed but no item was returned"))?;
    let holder = get_s(old, "execution_id").ok_or_else(|| corrupt("execution_id is missing"))?;
    let expires_at = get_i64(old, "expires_at").ok_or_else(|| corrupt("expires_at is missing"))?;
    if holder == lease.execution_id && get_bool(old, "enqueued") == Some(true) {
        Ok(ClaimOutcome::AlreadyEnqueued)
    } else {
        Ok(ClaimOutcome::Held {
            execution_id: holder.to_owned(),
            expires_at,
        })
    }
}

#[async_trait]
impl LeaseStore for DynamoLeaseStore {
    async fn claim(&self, lease: &Lease, now: i64) -> Result<ClaimOutcome, StoreError> {
        let mut e = Expr::default();
        let condition = format!(
            "attribute_not_exists({key}) OR {exp} < {now} OR ({eid} = {me} AND {enq} = {no})",
            key = e.name(KEY),
            exp = e.name("expires_at"),
            now = e.value("now", AttributeValue::N(now.to_string())),
            eid = e.name("execution_id"),
            me = e.value("eid", AttributeValue::S(lease.execution_id.clone())),
            enq = e.name("enqueued"),
            no = e.value("false", AttributeValue::Bool(false)),
        );
        let (names, values) = e.into_parts();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(lease_item(lease)))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let again = out
                    .attributes()
                    .and_then(|old| get_s(old, "execution_id"))
                    .is_some_and(|holder| holder == lease.execution_id);
                Ok(if again {
                    ClaimOutcome::Reclaimed
                } else {
                    ClaimOutcome::Claimed
                })
            }
            Err(err) => {
                if let Some(PutItemError::ConditionalCheckFailedException(ccf)) =
                    err.as_service_error()
                {
                    return outcome_from_holder(lease, ccf.item());
                }
                Err(store_error("PutItem", err))
            }
        }
    }

    async fn hold(&self, lease: &Lease, now: i64) -> Result<HoldOutcome, StoreError> {
        let key = Lease::key(&lease.pipeline_id, &lease.ticker);
        let mut item = lease_item(lease);
        item.remove(KEY);
        item.insert("enqueued".to_owned(), AttributeValue::Bool(true));
        let mut e = Expr::default();
        let sets: Vec<String> = item
            .into_iter()
            .map(|(name, value)| {
                let n = e.name(&name);
                let v = e.value(&name, value);
                format!("{n} = {v}")
            })
            .collect();
        let update = format!("SET {}", sets.join(", "));
        // Free, expired, or ours with an expiry no later than the one asked for (a longer expiry
        // of ours is kept: DynamoDB has no max(), so that case is answered below).
        let condition = format!(
            "attribute_not_exists({key}) OR {exp} < {now} OR ({eid} = {me} AND {exp} <= {until})",
            key = e.name(KEY),
            exp = e.name("expires_at"),
            now = e.value("now", AttributeValue::N(now.to_string())),
            eid = e.name("execution_id"),
            me = e.value("me", AttributeValue::S(lease.execution_id.clone())),
            until = e.value("until", AttributeValue::N(lease.expires_at.to_string())),
        );
        let (names, values) = e.into_parts();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(key.clone()))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(_) => return Ok(HoldOutcome::Held),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(ccf)) => ccf.item().cloned(),
                _ => return Err(store_error("UpdateItem", err)),
            },
        };
        let corrupt = |reason: &str| StoreError::Corrupt {
            entity: ENTITY,
            key: key.clone(),
            reason: reason.to_owned(),
        };
        let old =
            old.ok_or_else(|| corrupt("the hold's condition failed but no item was returned"))?;
        let holder =
            get_s(&old, "execution_id").ok_or_else(|| corrupt("execution_id is missing"))?;
        let expires_at =
            get_i64(&old, "expires_at").ok_or_else(|| corrupt("expires_at is missing"))?;
        if holder != lease.execution_id {
            return Ok(HoldOutcome::Lost {
                execution_id: holder.to_owned(),
                expires_at,
            });
        }
        // Ours already, until later than asked: keep that expiry, only mark it started.
        self.set_started(lease).await?;
        Ok(HoldOutcome::Held)
    }

    async fn release(
        &self,
        pipeline_id: &str,
        ticker: &Ticker,
        execution_id: &str,
    ) -> Result<(), StoreError> {
        let key = Lease::key(pipeline_id, ticker);
        let mut e = Expr::default();
        let condition = format!(
            "{} = {}",
            e.name("execution_id"),
            e.value("eid", AttributeValue::S(execution_id.to_owned()))
        );
        let (names, values) = e.into_parts();
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(key.clone()))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .send()
            .await;
        if !condition_held("DeleteItem", result)? {
            tracing::debug!(
                lease_key = %key,
                %execution_id,
                "lease not held by this execution; release is a no-op"
            );
        }
        Ok(())
    }
}

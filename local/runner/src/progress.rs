//! What the chain has done so far, read from the tables: executions by status and orders.

use std::collections::BTreeMap;

use anyhow::Context;
use aws_sdk_dynamodb::types::{AttributeValue, Select};

/// Executions by status (`COMPLETED`, ...), counted with a paginated scan.
pub async fn executions_by_status(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    let mut start: Option<std::collections::HashMap<String, AttributeValue>> = None;
    loop {
        let resp = dynamo
            .scan()
            .table_name(table)
            .projection_expression("#s")
            .expression_attribute_names("#s", "status")
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .with_context(|| format!("scanning {table}"))?;
        for item in resp.items() {
            if let Some(AttributeValue::S(s)) = item.get("status") {
                *counts.entry(s.clone()).or_insert(0) += 1;
            }
        }
        match resp.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return Ok(counts),
        }
    }
}

/// Number of items in a table (paginated `Select=COUNT` scan).
pub async fn count_items(dynamo: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<u64> {
    let mut total = 0u64;
    let mut start: Option<std::collections::HashMap<String, AttributeValue>> = None;
    loop {
        let resp = dynamo
            .scan()
            .table_name(table)
            .select(Select::Count)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .with_context(|| format!("counting {table}"))?;
        total += resp.count() as u64;
        match resp.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return Ok(total),
        }
    }
}

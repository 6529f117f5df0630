//! Whole-table reads for operators' tools (the `tradeflow` CLI): every item of a table, each
//! decoded with the same mapping the functions use, a bad item reported with its key instead of
//! failing the listing. Not used on the functions' request paths (a Scan reads the whole table).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use tradeflow_core::error::StoreError;

use crate::error::{AdapterError, store_error, store_permanent};
use crate::item::Item;

/// A stored item that does not decode into its domain type (or breaks its invariants).
#[derive(Debug, Clone, PartialEq)]
pub struct UndecodableItem {
    /// The item's key attribute, or `<missing KEY>`.
    pub key: String,
    /// Why it does not decode, as the functions would log it.
    pub reason: String,
}

/// One item of a listing: the decoded value or why it is not one.
pub type Listed<T> = Result<T, UndecodableItem>;

/// Every item of `table` (consistent Scan, all pages), or of `index` with a Query on
/// `key_name = key_value` when `query` is given.
pub(crate) async fn read_all(
    client: &Client,
    table: &str,
    query: Option<(&str, &str, &str)>,
) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let (page, next) = match query {
            None => {
                let out = client
                    .scan()
                    .table_name(table)
                    .consistent_read(true)
                    .set_exclusive_start_key(start.clone())
                    .send()
                    .await
                    .map_err(|e| store_error("Scan", e))?;
                (out.items.unwrap_or_default(), out.last_evaluated_key)
            }
            Some((index, key_name, key_value)) => {
                let out = client
                    .query()
                    .table_name(table)
                    .index_name(index)
                    .key_condition_expression("#k = :v")
                    .expression_attribute_names("#k", key_name)
                    .expression_attribute_values(":v", AttributeValue::S(key_value.to_owned()))
                    .set_exclusive_start_key(start.clone())
                    .send()
                    .await
                    .map_err(|e| store_error("Query", e))?;
                (out.items.unwrap_or_default(), out.last_evaluated_key)
            }
        };
        items.extend(page);
        match next {
            Some(next) if !next.is_empty() => {
                if start.as_ref() == Some(&next) {
                    return Err(store_permanent(
                        "Scan",
                        AdapterError::UnexpectedResponse(
                            "the same LastEvaluatedKey was returned twice".into(),
                        ),
                    ));
                }
                start = Some(next);
            }
            _ => return Ok(items),
        }
    }
}

/// The key attribute of `item` for a listing's error lines.
pub(crate) fn key_of(item: &Item, key: &str) -> String {
    crate::item::get_s(item, key).map_or_else(|| format!("<missing {key}>"), str::to_owned)
}

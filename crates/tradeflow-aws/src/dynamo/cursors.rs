//! [`CursorStore`] on the cursors table (key `stream`, S).
//!
//! Item: `stream` (S), `cursor` (N, open time of the last candle fully processed, Unix seconds),
//! `updated_at` (N, Unix seconds of the write).

use super::condition_held;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use tradeflow_core::error::StoreError;
use tradeflow_core::ports::{Clock, CursorStore, SystemClock};

use super::expr::Expr;
use crate::error::store_error;
use crate::item::{Item, get_i64};

const KEY: &str = "stream";

/// The signal generator's progress per stream, moved only by compare-and-set.
#[derive(Debug, Clone)]
pub struct DynamoCursorStore {
    client: Client,
    table: String,
}

impl DynamoCursorStore {
    /// A store on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoCursorStore {
            client,
            table: table.into(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

#[async_trait]
impl CursorStore for DynamoCursorStore {
    async fn get_cursor(&self, stream: &str) -> Result<Option<i64>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(stream.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        match output.item {
            None => Ok(None),
            Some(item) => get_i64(&item, "cursor")
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt {
                    entity: "cursor",
                    key: stream.to_owned(),
                    reason: "cursor is missing or not an integer".into(),
                }),
        }
    }

    async fn advance(
        &self,
        stream: &str,
        expected: Option<i64>,
        to: i64,
    ) -> Result<bool, StoreError> {
        let item = Item::from([
            (KEY.to_owned(), AttributeValue::S(stream.to_owned())),
            ("cursor".to_owned(), AttributeValue::N(to.to_string())),
            (
                "updated_at".to_owned(),
                AttributeValue::N(SystemClock.now().to_string()),
            ),
        ]);
        let mut e = Expr::default();
        let condition = match expected {
            None => format!("attribute_not_exists({})", e.name(KEY)),
            Some(value) => format!(
                "{} = {}",
                e.name("cursor"),
                e.value("expected", AttributeValue::N(value.to_string()))
            ),
        };
        let (names, values) = e.into_parts();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .send()
            .await;
        let moved = condition_held("PutItem", result)?;
        if !moved {
            tracing::debug!(%stream, ?expected, to, "cursor moved concurrently; not advanced");
        }
        Ok(moved)
    }
}

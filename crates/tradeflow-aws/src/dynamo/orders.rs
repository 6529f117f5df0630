//! [`OrderStore`] on the orders table (key `order_id`, S).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use tradeflow_core::error::StoreError;
use tradeflow_core::order::PaperOrder;
use tradeflow_core::ports::{OrderStore, PlaceOutcome};

use super::expr::Expr;
use super::listing::{Listed, UndecodableItem, key_of, read_all};
use crate::error::{store_error, store_permanent};
use crate::item::{from_item, to_item};

pub(crate) const KEY: &str = "order_id";

/// Paper orders, one item per order with [`PaperOrder`]'s serde field names; written at most once.
#[derive(Debug, Clone)]
pub struct DynamoOrderStore {
    client: Client,
    table: String,
}

impl DynamoOrderStore {
    /// A store on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoOrderStore {
            client,
            table: table.into(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

impl DynamoOrderStore {
    /// Every order of the table, each decoded as [`OrderStore::get`] decodes it, one that does
    /// not with its key and the reason (operators' listings).
    pub async fn list_all(&self) -> Result<Vec<Listed<PaperOrder>>, StoreError> {
        let items = read_all(&self.client, &self.table, None).await?;
        Ok(items
            .into_iter()
            .map(|item| {
                let key = key_of(&item, KEY);
                from_item(item).map_err(|e| UndecodableItem {
                    key,
                    reason: e.to_string(),
                })
            })
            .collect())
    }
}

#[async_trait]
impl OrderStore for DynamoOrderStore {
    async fn place(&self, order: &PaperOrder) -> Result<PlaceOutcome, StoreError> {
        let item = to_item(order).map_err(|e| store_permanent("PutItem", e))?;
        let mut e = Expr::default();
        let condition = format!("attribute_not_exists({})", e.name(KEY));
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
        match result {
            Ok(_) => Ok(PlaceOutcome::Created),
            Err(err)
                if err.as_service_error().is_some_and(|s| {
                    matches!(s, PutItemError::ConditionalCheckFailedException(_))
                }) =>
            {
                Ok(PlaceOutcome::AlreadyExists)
            }
            Err(err) => Err(store_error("PutItem", err)),
        }
    }

    async fn get(&self, order_id: &str) -> Result<Option<PaperOrder>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(order_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        output
            .item
            .map(|item| {
                from_item(item).map_err(|e| StoreError::Corrupt {
                    entity: "order",
                    key: order_id.to_owned(),
                    reason: e.to_string(),
                })
            })
            .transpose()
    }
}

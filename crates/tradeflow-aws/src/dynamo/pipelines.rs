//! [`PipelineStore`] on the pipelines table (key `pipeline_id`, S).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use tradeflow_core::error::{StoreError, error_chain};
use tradeflow_core::pipeline::{Pipeline, PipelineError};
use tradeflow_core::ports::PipelineStore;

use super::expr::Expr;
use crate::error::{AdapterError, store_error, store_permanent};
use crate::item::{Item, ItemError, from_item, get_s, to_item};

const KEY: &str = "pipeline_id";
const ENTITY: &str = "pipeline";
/// `TriggerMode::Signal` as serde writes it (checked by a test).
const SIGNAL_MODE: &str = "signal";

/// Pipelines stored one item per pipeline, the attribute names being [`Pipeline`]'s serde field
/// names.
#[derive(Debug, Clone)]
pub struct DynamoPipelineStore {
    client: Client,
    table: String,
    scan_page_size: Option<i32>,
}

impl DynamoPipelineStore {
    /// A store on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoPipelineStore {
            client,
            table: table.into(),
            scan_page_size: None,
        }
    }

    /// Caps how many items one Scan page evaluates (DynamoDB's `Limit`); by default a page is
    /// DynamoDB's 1 MB. Every page is read either way.
    pub fn with_scan_page_size(mut self, items_per_page: i32) -> Self {
        self.scan_page_size = Some(items_per_page);
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Decodes and validates one scanned item; `None` (and a warning) when it does not.
    fn decode_scanned(&self, item: Item) -> Option<Pipeline> {
        let key = get_s(&item, KEY)
            .unwrap_or("<missing pipeline_id>")
            .to_owned();
        match decode(item) {
            Ok(p) if p.is_signal_triggered() => Some(p),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(
                    table = %self.table,
                    pipeline_id = %key,
                    reason = %error_chain(&error),
                    "skipping a pipeline item that does not decode"
                );
                None
            }
        }
    }
}

/// Why a stored item is not a valid pipeline. Never retryable: the item stays as it is.
#[derive(Debug, thiserror::Error)]
enum DecodeError {
    /// The item does not have the pipeline's attributes and types.
    #[error(transparent)]
    Shape(#[from] ItemError),
    /// It decodes, but breaks [`Pipeline::validate`].
    #[error(transparent)]
    Invalid(#[from] PipelineError),
}

fn decode(item: Item) -> Result<Pipeline, DecodeError> {
    let pipeline: Pipeline = from_item(item)?;
    pipeline.validate()?;
    Ok(pipeline)
}

#[async_trait]
impl PipelineStore for DynamoPipelineStore {
    async fn load_signal_pipelines(&self) -> Result<Vec<Pipeline>, StoreError> {
        let mut expr = Expr::default();
        let filter = format!(
            "{} = {} AND {} = {}",
            expr.name("is_active"),
            expr.value("t", AttributeValue::Bool(true)),
            expr.name("trigger_mode"),
            expr.value("signal", AttributeValue::S(SIGNAL_MODE.into())),
        );
        let (names, values) = expr.into_parts();
        let mut pipelines = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(&filter)
                .set_expression_attribute_names(names.clone())
                .set_expression_attribute_values(values.clone())
                .consistent_read(true)
                .set_limit(self.scan_page_size)
                .set_exclusive_start_key(start.clone())
                .send()
                .await
                .map_err(|e| store_error("Scan", e))?;
            pipelines.extend(
                output
                    .items
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|i| self.decode_scanned(i)),
            );
            match output.last_evaluated_key {
                Some(next) if !next.is_empty() => {
                    if start.as_ref() == Some(&next) {
                        return Err(store_permanent(
                            "Scan",
                            AdapterError::UnexpectedResponse(
                                "Scan returned the same LastEvaluatedKey twice".into(),
                            ),
                        ));
                    }
                    start = Some(next);
                }
                _ => break,
            }
        }
        Ok(pipelines)
    }

    async fn get_pipeline(&self, pipeline_id: &str) -> Result<Option<Pipeline>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(pipeline_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        match output.item {
            None => Ok(None),
            Some(item) => decode(item).map(Some).map_err(|error| StoreError::Corrupt {
                entity: ENTITY,
                key: pipeline_id.to_owned(),
                reason: error_chain(&error),
            }),
        }
    }

    /// Refuses (as a permanent error) a pipeline that does not pass [`Pipeline::validate`].
    async fn put_pipeline(&self, pipeline: &Pipeline) -> Result<(), StoreError> {
        pipeline
            .validate()
            .map_err(|e| store_permanent("PutItem", e))?;
        let item = to_item(pipeline).map_err(|e| store_permanent("PutItem", e))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| store_error("PutItem", e))?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tradeflow_core::pipeline::TriggerMode;

    #[test]
    fn the_scan_filter_uses_serdes_name_for_signal_mode() {
        assert_eq!(
            serde_json::to_value(TriggerMode::Signal).unwrap(),
            serde_json::json!(SIGNAL_MODE)
        );
    }
}

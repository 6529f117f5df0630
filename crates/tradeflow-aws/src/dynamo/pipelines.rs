//! [`PipelineStore`] on the pipelines table (key `pipeline_id`, S).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use tradeflow_core::error::{StoreError, error_chain};
use tradeflow_core::pipeline::{Pipeline, PipelineError};
use tradeflow_core::ports::{PipelineChange, PipelineStore};

use super::expr::Expr;
use super::listing::{Listed, UndecodableItem, key_of, read_all};
use crate::error::{AdapterError, store_error, store_permanent};
use crate::item::{Item, ItemError, from_item, get_s, to_item};

const KEY: &str = "pipeline_id";
const ENTITY: &str = "pipeline";
/// The global secondary index of pipelines by the time they were written (infra/template.yaml):
/// partition key `catalog` (always [`CATALOG`]), sort key `updated_at` (N, Unix ms).
pub const UPDATES_INDEX: &str = "by-update";
/// The one `catalog` value: every pipeline in one index partition, read in `updated_at` order.
/// Pipelines are written rarely (far below a partition's 1,000 writes/s).
pub const CATALOG: &str = "pipeline";
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

    /// Every pipeline of the table, whatever its state (operators' listings): each item decoded
    /// and validated exactly as the dispatcher and the executor read it, one that does not with
    /// its key and the reason. Reads the whole table.
    pub async fn list_all(&self) -> Result<Vec<Listed<Pipeline>>, StoreError> {
        let items = read_all(&self.client, &self.table, None).await?;
        Ok(items
            .into_iter()
            .map(|item| {
                let key = key_of(&item, KEY);
                decode(item).map_err(|e| UndecodableItem {
                    key,
                    reason: error_chain(&e),
                })
            })
            .collect())
    }

    /// Deletes the pipeline item; `Ok(false)` when there was none. The executor skips runs of a
    /// pipeline that no longer exists at once; the dispatchers drop it from their index at their
    /// next full reload (a deleted item leaves no trace in the `updated_at` index). Writing it
    /// inactive first ([`PipelineStore::put_pipeline`]) stops new runs sooner.
    pub async fn delete_pipeline(&self, pipeline_id: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(pipeline_id.to_owned()))
            .condition_expression("attribute_exists(#k)")
            .expression_attribute_names("#k", KEY)
            .send()
            .await;
        super::condition_held("DeleteItem", result)
    }

    /// The valid signal-triggered pipelines of one Scan page; every other item is skipped, each
    /// bad one with a warning naming it and why.
    fn decode_page(&self, items: Vec<Item>) -> Vec<Pipeline> {
        items
            .into_iter()
            .filter_map(|i| self.decode_scanned(i))
            .collect()
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
            pipelines.extend(self.decode_page(output.items.unwrap_or_default()));
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
    async fn changed_since(&self, since_ms: i64) -> Result<Vec<PipelineChange>, StoreError> {
        let mut expr = Expr::default();
        let condition = format!(
            "{} = {} AND {} >= {}",
            expr.name("catalog"),
            expr.value("catalog", AttributeValue::S(CATALOG.into())),
            expr.name("updated_at"),
            expr.value("since", AttributeValue::N(since_ms.to_string())),
        );
        let (names, values) = expr.into_parts();
        let mut changes = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(UPDATES_INDEX)
                .key_condition_expression(&condition)
                .set_expression_attribute_names(names.clone())
                .set_expression_attribute_values(values.clone())
                .set_exclusive_start_key(start.clone())
                .send()
                .await
                .map_err(|e| store_error("Query", e))?;
            for item in output.items.unwrap_or_default() {
                let Some(id) = get_s(&item, KEY).map(str::to_owned) else {
                    continue;
                };
                match self.decode_scanned(item) {
                    Some(p) => changes.push(PipelineChange::Signal(p)),
                    None => changes.push(PipelineChange::Gone(id)),
                }
            }
            match output.last_evaluated_key {
                Some(next) if !next.is_empty() && start.as_ref() != Some(&next) => {
                    start = Some(next);
                }
                _ => break,
            }
        }
        Ok(changes)
    }

    /// Also stamps `updated_at` (now, Unix ms) and `catalog`, so the dispatchers' incremental
    /// refresh ([`PipelineStore::changed_since`]) sees the write. Other writers of the table
    /// must set both too; otherwise their writes reach the dispatchers at the next full load.
    async fn put_pipeline(&self, pipeline: &Pipeline) -> Result<(), StoreError> {
        pipeline
            .validate()
            .map_err(|e| store_permanent("PutItem", e))?;
        let mut item = to_item(pipeline).map_err(|e| store_permanent("PutItem", e))?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        item.insert(
            "updated_at".to_owned(),
            AttributeValue::N(now_ms.to_string()),
        );
        item.insert("catalog".to_owned(), AttributeValue::S(CATALOG.into()));
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

    fn store() -> DynamoPipelineStore {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        DynamoPipelineStore::new(Client::from_conf(config), "pipelines")
    }

    fn good(id: &str) -> serde_json::Value {
        serde_json::json!({
            "pipeline_id": id, "user_id": "u1", "name": id, "is_active": true,
            "trigger_mode": "signal", "tickers": ["AAPL"],
            "signal_subscriptions": [{"signal_type": "rsi_oversold", "min_confidence": 60}]
        })
    }

    fn item(value: &serde_json::Value) -> Item {
        to_item(value).unwrap()
    }

    /// The pipelines-table part of the bad-input catalogue (RELIABILITY.md): each bad item is
    /// skipped with a warning naming it and the reason, and the rest of the page loads.
    #[test]
    fn bad_items_are_skipped_and_the_rest_of_the_page_loads() {
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = good("bad");
            f(&mut v);
            item(&v)
        };
        let bad: Vec<(&str, Item, &str)> = vec![
            (
                "no tickers",
                edit(&|v| {
                    v.as_object_mut().unwrap().remove("tickers");
                }),
                "tickers",
            ),
            (
                "tickers a string",
                edit(&|v| v["tickers"] = "AAPL".into()),
                "",
            ),
            (
                "bad ticker",
                edit(&|v| v["tickers"] = serde_json::json!(["MS FT"])),
                "MS FT",
            ),
            (
                "is_active a string",
                edit(&|v| v["is_active"] = "yes".into()),
                "",
            ),
            (
                "min_confidence 170",
                edit(&|v| v["signal_subscriptions"][0]["min_confidence"] = 170.into()),
                "min_confidence",
            ),
            (
                "min_confidence a string",
                edit(&|v| v["signal_subscriptions"][0]["min_confidence"] = "high".into()),
                "",
            ),
            (
                "unknown timeframe",
                edit(&|v| v["signal_subscriptions"][0]["timeframe"] = "7".into()),
                "",
            ),
            (
                "unknown step",
                edit(&|v| v["steps"] = serde_json::json!(["moon"])),
                "",
            ),
            ("empty user", edit(&|v| v["user_id"] = "".into()), "user_id"),
            (
                "max_runtime 0",
                edit(&|v| v["max_runtime_secs"] = 0.into()),
                "max_runtime",
            ),
            (
                "no pipeline_id",
                {
                    let mut i = item(&good("x"));
                    i.remove("pipeline_id");
                    i
                },
                "pipeline_id",
            ),
        ];
        for (name, i, needle) in &bad {
            let err = decode(i.clone()).unwrap_err();
            assert!(
                error_chain(&err).contains(needle),
                "{name}: {}",
                error_chain(&err)
            );
        }
        let mut page = vec![item(&good("p1"))];
        page.extend(bad.into_iter().map(|(_, i, _)| i));
        // Lowercase tickers in the table are upper-cased, as in signals.
        let mut lower = good("p2");
        lower["tickers"] = serde_json::json!(["msft"]);
        page.push(item(&lower));
        // Inactive and periodic pipelines are left out, without a warning.
        let mut inactive = good("p3");
        inactive["is_active"] = false.into();
        page.push(item(&inactive));
        let loaded = store().decode_page(page);
        let ids: Vec<_> = loaded.iter().map(|p| p.pipeline_id.as_str()).collect();
        assert_eq!(ids, ["p1", "p2"]);
        assert_eq!(loaded[1].tickers[0].as_str(), "MSFT");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn json() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                (-1e6f64..1e6).prop_map(serde_json::Value::from),
                ".{0,12}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(3, 24, 5, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::from),
                    prop::collection::btree_map("[a-z_]{0,10}", inner, 0..5)
                        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }

        const FIELDS: [&str; 10] = [
            "pipeline_id",
            "user_id",
            "is_active",
            "trigger_mode",
            "tickers",
            "signal_subscriptions",
            "steps",
            "max_runtime_secs",
            "risk",
            "name",
        ];

        proptest! {
            #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

            /// A stored item with one field replaced by arbitrary data decodes or is refused;
            /// what decodes is valid and survives the way back into an item.
            #[test]
            fn an_item_with_one_arbitrary_field_decodes_or_is_refused(
                field in 0..FIELDS.len(),
                value in json(),
            ) {
                let mut v = good("p1");
                v[FIELDS[field]] = value;
                if let Ok(i) = to_item(&v) && let Ok(p) = decode(i) {
                    prop_assert!(p.validate().is_ok());
                    prop_assert_eq!(decode(to_item(&p).unwrap()).unwrap(), p);
                }
            }

            #[test]
            fn an_arbitrary_item_never_panics(value in json()) {
                if let Ok(i) = to_item(&value) {
                    let _ = store().decode_page(vec![i]);
                }
            }
        }
    }
}

//! Helpers shared by the emulator tests: the emulator's config, unique resource names, tables
//! with the key schemas of `infra/`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};

/// The AWS config for the emulator at `AWS_ENDPOINT_URL`. The emulator tests are `#[ignore]`d, so
/// this only runs when they are asked for (`cargo test -- --include-ignored`, as local/test.sh
/// does); without an endpoint that is a failure, never a silent pass.
pub async fn emulator() -> aws_config::SdkConfig {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "this test needs the AWS emulator, and AWS_ENDPOINT_URL is not set: \
         `source local/env.sh && local/emulator.sh start` first, or run local/test.sh"
    );
    tradeflow_aws::load_aws_config()
        .await
        .expect("AWS_ENDPOINT_URL is a URL")
}

/// A name no other test (or run) uses: `<prefix>-<pid>-<nanos>-<n>`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn attr(name: &str, ty: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ty)
        .build()
        .unwrap()
}

fn key(name: &str, ty: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(ty)
        .build()
        .unwrap()
}

/// Creates an on-demand table keyed by the string attribute `hash_key`; returns its name.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    prefix: &str,
    hash_key: &str,
) -> String {
    let name = unique(prefix);
    client
        .create_table()
        .table_name(&name)
        .attribute_definitions(attr(hash_key, ScalarAttributeType::S))
        .key_schema(key(hash_key, KeyType::Hash))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table");
    name
}

/// The executions table: key `execution_id`, GSI `by-pipeline` (`pipeline_id`, `created_at`).
pub async fn create_executions_table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = unique("executions");
    client
        .create_table()
        .table_name(&name)
        .attribute_definitions(attr("execution_id", ScalarAttributeType::S))
        .attribute_definitions(attr("pipeline_id", ScalarAttributeType::S))
        .attribute_definitions(attr("created_at", ScalarAttributeType::N))
        .attribute_definitions(attr("run_shard", ScalarAttributeType::N))
        .attribute_definitions(attr("in_progress_until", ScalarAttributeType::N))
        .key_schema(key("execution_id", KeyType::Hash))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("by-pipeline")
                .key_schema(key("pipeline_id", KeyType::Hash))
                .key_schema(key("created_at", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(tradeflow_aws::EXECUTIONS_RUNNING_INDEX)
                .key_schema(key("run_shard", KeyType::Hash))
                .key_schema(key("in_progress_until", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create executions table");
    name
}

/// A pipelines table like the template's: key `pipeline_id`, GSI `by-update` (`catalog`,
/// `updated_at`) for the dispatchers' incremental refresh.
pub async fn create_pipelines_table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = unique("pipelines");
    client
        .create_table()
        .table_name(&name)
        .attribute_definitions(attr("pipeline_id", ScalarAttributeType::S))
        .attribute_definitions(attr("catalog", ScalarAttributeType::S))
        .attribute_definitions(attr("updated_at", ScalarAttributeType::N))
        .key_schema(key("pipeline_id", KeyType::Hash))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(tradeflow_aws::PIPELINE_UPDATES_INDEX)
                .key_schema(key("catalog", KeyType::Hash))
                .key_schema(key("updated_at", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create pipelines table");
    name
}

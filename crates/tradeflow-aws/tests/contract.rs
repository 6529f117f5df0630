//! The ports' contracts ([`tradeflow_core::fakes::contract`]) on the DynamoDB adapters against the
//! emulator (`AWS_ENDPOINT_URL`), the same checks `tradeflow-core`'s `tests/contract.rs` runs on the
//! in-memory fakes: what the handler tests on the fakes assume is what DynamoDB does.
//! `#[ignore]`d like the other emulator tests: local/test.sh runs them with `--include-ignored`.
//! Each test creates its own randomly named table.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    create_executions_table, create_pipelines_table, create_table, emulator, now, unique,
};
use tradeflow_aws::{
    DynamoCursorStore, DynamoExecutionStore, DynamoLeaseStore, DynamoOrderStore,
    DynamoPipelineStore, DynamoRunLedger,
};
use tradeflow_core::fakes::contract;

async fn client() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&emulator().await)
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn the_lease_adapter_keeps_the_lease_contract() {
    let client = client().await;
    let table = create_table(&client, "leases", "lease_key").await;
    contract::lease_store(&DynamoLeaseStore::new(client, table), &unique("c"), now()).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn the_execution_adapter_keeps_the_execution_contract() {
    let client = client().await;
    let table = create_executions_table(&client).await;
    let store = DynamoExecutionStore::new(client, table);
    contract::execution_store(&store, &unique("c"), now()).await;
    // moto 5.2.5 applies part of an oversized UpdateItem (DynamoDB applies none of it): only the
    // permanent error is checked here.
    contract::execution_refuses_an_oversized_record(&store, &unique("c-size"), now(), false).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn the_order_adapter_keeps_the_order_contract() {
    let client = client().await;
    let table = create_table(&client, "orders", "order_id").await;
    contract::order_store(&DynamoOrderStore::new(client, table), &unique("c"), now()).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn the_cursor_adapter_keeps_the_cursor_contract() {
    let client = client().await;
    let table = create_table(&client, "cursors", "stream").await;
    contract::cursor_store(&DynamoCursorStore::new(client, table), &unique("c")).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn the_pipeline_adapter_keeps_the_pipeline_contract() {
    let client = client().await;
    let table = create_pipelines_table(&client).await;
    contract::pipeline_store(&DynamoPipelineStore::new(client, table), &unique("c")).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn the_ledger_adapter_keeps_the_ledger_contract() {
    let client = client().await;
    let executions_table = create_executions_table(&client).await;
    let orders_table = create_table(&client, "orders", "order_id").await;
    let leases_table = create_table(&client, "leases", "lease_key").await;
    let ledger = DynamoRunLedger::new(
        client.clone(),
        &executions_table,
        &orders_table,
        &leases_table,
    );
    let executions = DynamoExecutionStore::new(client.clone(), executions_table);
    let orders = DynamoOrderStore::new(client.clone(), orders_table);
    let leases = DynamoLeaseStore::new(client, leases_table);
    let tables = contract::LedgerTables {
        executions: &executions,
        orders: &orders,
        leases: &leases,
    };
    contract::run_ledger(&ledger, &tables, &unique("c"), now()).await;
}

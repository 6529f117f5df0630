//! The ports' contracts ([`tradeflow_core::fakes::contract`]) on the in-memory fakes. The same
//! checks run on the DynamoDB adapters in `tradeflow-aws`'s `tests/contract.rs`.

use std::sync::Arc;
use tradeflow_core::fakes::contract;

use tradeflow_core::fakes::{
    MemoryCursorStore, MemoryExecutionStore, MemoryLeaseStore, MemoryOrderStore,
    MemoryPipelineStore, MemoryRunLedger,
};

const NOW: i64 = 1_750_000_000;

#[tokio::test]
async fn the_lease_fake_keeps_the_lease_contract() {
    contract::lease_store(&MemoryLeaseStore::default(), "c", NOW).await;
}

#[tokio::test]
async fn the_execution_fake_keeps_the_execution_contract() {
    let store = MemoryExecutionStore::default();
    contract::execution_store(&store, "c", NOW).await;
    contract::execution_refuses_an_oversized_record(&store, "c-size", NOW, true).await;
}

#[tokio::test]
async fn the_order_fake_keeps_the_order_contract() {
    contract::order_store(&MemoryOrderStore::default(), "c", NOW).await;
}

#[tokio::test]
async fn the_cursor_fake_keeps_the_cursor_contract() {
    contract::cursor_store(&MemoryCursorStore::default(), "c").await;
}

#[tokio::test]
async fn the_pipeline_fake_keeps_the_pipeline_contract() {
    contract::pipeline_store(&MemoryPipelineStore::default(), "c").await;
}

#[tokio::test]
async fn the_ledger_fake_keeps_the_ledger_contract() {
    let executions = Arc::new(MemoryExecutionStore::default());
    let orders = Arc::new(MemoryOrderStore::default());
    let leases = Arc::new(MemoryLeaseStore::default());
    let ledger = MemoryRunLedger::new(executions.clone(), orders.clone(), leases.clone());
    let tables = contract::LedgerTables {
        executions: executions.as_ref(),
        orders: orders.as_ref(),
        leases: leases.as_ref(),
    };
    contract::run_ledger(&ledger, &tables, "c", NOW).await;
}

//! The DynamoDB adapters against the real emulator (`AWS_ENDPOINT_URL`). `#[ignore]`d: local/test.sh
//! runs them with `--include-ignored`, and run without an emulator they fail.
//! Each test creates its own randomly named table.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::{create_executions_table, create_table, emulator, now};
use serde_json::json;
use tradeflow_aws::item::to_item;
use tradeflow_aws::{
    DynamoCursorStore, DynamoExecutionStore, DynamoLeaseStore, DynamoOrderStore,
    DynamoPipelineStore, EXECUTION_RETENTION_SECS, LEASE_TTL_GRACE_SECS,
};
use tradeflow_core::error::{StoreError, error_chain};
use tradeflow_core::execution::{ExecutionRecord, ExecutionRequest, ExecutionStatus};
use tradeflow_core::fakes::fixtures;
use tradeflow_core::ids;
use tradeflow_core::order::PaperOrder;
use tradeflow_core::pipeline::Pipeline;
use tradeflow_core::ports::{
    BeginOutcome, ClaimOutcome, CursorStore, ExecutionStore, HoldOutcome, Lease, LeaseStore,
    OrderStore, PipelineStore, PlaceOutcome,
};
use tradeflow_core::vocab::Ticker;

fn pipeline(id: &str, active: bool, mode: &str) -> Pipeline {
    serde_json::from_value(json!({
        "pipeline_id": id, "user_id": "u1", "name": format!("pipeline {id}"),
        "is_active": active, "trigger_mode": mode, "tickers": ["AAPL", "msft"],
        "signal_subscriptions": [
            {"signal_type": "rsi_oversold", "timeframe": "5", "min_confidence": 70},
            {"signal_type": "macd_cross"}
        ],
        "max_runtime_secs": 600,
        "risk": {"account_equity": 50000.0, "risk_per_trade": 0.02, "max_position_fraction": 0.25}
    }))
    .unwrap()
}

async fn raw_get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
    value: &str,
) -> std::collections::HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(table)
        .key(key, AttributeValue::S(value.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("item exists")
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn signal_pipelines_are_read_across_pages_skipping_bad_items() {
    let config = emulator().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = create_table(&client, "pipelines", "pipeline_id").await;
    let store = DynamoPipelineStore::new(client.clone(), &table).with_scan_page_size(2);

    let mut expected = Vec::new();
    for i in 0..7 {
        let p = pipeline(&format!("p{i}"), true, "signal");
        store.put_pipeline(&p).await.unwrap();
        expected.push(p);
    }
    store
        .put_pipeline(&pipeline("inactive", false, "signal"))
        .await
        .unwrap();
    store
        .put_pipeline(&pipeline("periodic", true, "periodic"))
        .await
        .unwrap();
    // Written behind the store's back: one that does not decode, one that fails validation.
    let mut undecodable = to_item(&pipeline("corrupt", true, "signal")).unwrap();
    undecodable.insert("tickers".into(), AttributeValue::S("AAPL".into()));
    let mut invalid = to_item(&pipeline("invalid", true, "signal")).unwrap();
    invalid.insert("max_runtime_secs".into(), AttributeValue::N("0".into()));
    for item in [undecodable, invalid] {
        client
            .put_item()
            .table_name(&table)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }

    // The emulator pages a Scan by Limit, so the store's loop goes through several pages.
    let first_page = client
        .scan()
        .table_name(&table)
        .limit(2)
        .send()
        .await
        .unwrap();
    assert_eq!(first_page.items().len(), 2);
    assert!(first_page.last_evaluated_key().is_some());

    let mut loaded = store.load_signal_pipelines().await.unwrap();
    loaded.sort_by(|a, b| a.pipeline_id.cmp(&b.pipeline_id));
    assert_eq!(loaded, expected);

    // The default page size reads the same.
    let whole = DynamoPipelineStore::new(client.clone(), &table);
    assert_eq!(whole.load_signal_pipelines().await.unwrap().len(), 7);
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn a_pipeline_round_trips_and_a_corrupt_one_is_reported() {
    let config = emulator().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = create_table(&client, "pipelines", "pipeline_id").await;
    let store = DynamoPipelineStore::new(client.clone(), &table);

    let p = pipeline("p1", true, "signal");
    store.put_pipeline(&p).await.unwrap();
    assert_eq!(store.get_pipeline("p1").await.unwrap(), Some(p.clone()));
    assert_eq!(store.get_pipeline("absent").await.unwrap(), None);

    // Attribute names are the serde field names.
    let raw = raw_get(&client, &table, "pipeline_id", "p1").await;
    assert_eq!(raw["trigger_mode"], AttributeValue::S("signal".into()));
    assert_eq!(raw["is_active"], AttributeValue::Bool(true));
    assert_eq!(raw["max_runtime_secs"], AttributeValue::N("600".into()));

    let mut invalid = p.clone();
    invalid.max_runtime_secs = 0;
    let err = store.put_pipeline(&invalid).await.unwrap_err();
    assert!(matches!(err, StoreError::Permanent { .. }), "{err:?}");

    let mut broken = to_item(&p).unwrap();
    broken.insert("pipeline_id".into(), AttributeValue::S("broken".into()));
    broken.remove("user_id");
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(broken))
        .send()
        .await
        .unwrap();
    match store.get_pipeline("broken").await {
        Err(StoreError::Corrupt { entity, key, .. }) => {
            assert_eq!((entity, key.as_str()), ("pipeline", "broken"));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn a_missing_table_is_a_permanent_error() {
    let config = emulator().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let store = DynamoPipelineStore::new(client.clone(), common::unique("no-such-table"));
    let err = store.get_pipeline("p1").await.unwrap_err();
    assert!(matches!(err, StoreError::Permanent { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(
        error_chain(&err).contains("ResourceNotFound"),
        "{}",
        error_chain(&err)
    );
    let leases = DynamoLeaseStore::new(client, common::unique("no-such-table"));
    let lease = Lease {
        pipeline_id: "p1".into(),
        ticker: Ticker::parse("AAPL").unwrap(),
        execution_id: "exe-1".into(),
        expires_at: now() + 60,
    };
    let err = leases.claim(&lease, now()).await.unwrap_err();
    assert_eq!(err.kind(), "permanent");
}

fn lease(execution_id: &str, expires_at: i64) -> Lease {
    Lease {
        pipeline_id: "p1".into(),
        ticker: Ticker::parse("AAPL").unwrap(),
        execution_id: execution_id.into(),
        expires_at,
    }
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn a_lease_is_held_by_one_execution_until_it_expires_or_is_released() {
    let config = emulator().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = create_table(&client, "leases", "lease_key").await;
    let store = DynamoLeaseStore::new(client.clone(), &table);
    let t0 = 1_700_000_000;
    let first = lease("exe-a", t0 + 720);

    assert_eq!(
        store.claim(&first, t0).await.unwrap(),
        ClaimOutcome::Claimed
    );
    let raw = raw_get(&client, &table, "lease_key", "p1#AAPL").await;
    assert_eq!(raw["execution_id"], AttributeValue::S("exe-a".into()));
    assert_eq!(raw["ticker"], AttributeValue::S("AAPL".into()));
    assert_eq!(raw["expires_at"], AttributeValue::N((t0 + 720).to_string()));
    assert_eq!(raw["enqueued"], AttributeValue::Bool(false));
    assert_eq!(
        raw["ttl"],
        AttributeValue::N((t0 + 720 + LEASE_TTL_GRACE_SECS).to_string())
    );

    // Another execution is refused while the lease runs.
    let other = lease("exe-b", t0 + 800);
    assert_eq!(
        store.claim(&other, t0 + 10).await.unwrap(),
        ClaimOutcome::Held {
            execution_id: "exe-a".into(),
            expires_at: t0 + 720
        }
    );
    // The same execution claims again (a retried dispatch before its run started).
    assert_eq!(
        store.claim(&first, t0 + 20).await.unwrap(),
        ClaimOutcome::Reclaimed
    );
    // Once its run holds it, the next claim of the same execution says so.
    assert_eq!(
        store.hold(&first, t0 + 21).await.unwrap(),
        HoldOutcome::Held
    );
    assert_eq!(
        store.claim(&first, t0 + 30).await.unwrap(),
        ClaimOutcome::AlreadyEnqueued
    );
    // Past its expiry, another execution takes it over.
    assert_eq!(
        store.claim(&other, t0 + 721).await.unwrap(),
        ClaimOutcome::Claimed
    );
    // The old holder's release is a no-op; the new holder's frees it.
    store.release("p1", &first.ticker, "exe-a").await.unwrap();
    assert_eq!(
        store
            .claim(&lease("exe-c", t0 + 900), t0 + 722)
            .await
            .unwrap(),
        ClaimOutcome::Held {
            execution_id: "exe-b".into(),
            expires_at: t0 + 800
        }
    );
    store.release("p1", &other.ticker, "exe-b").await.unwrap();
    assert_eq!(
        store
            .claim(&lease("exe-c", t0 + 900), t0 + 723)
            .await
            .unwrap(),
        ClaimOutcome::Claimed
    );
    // Releasing an absent lease does not create one.
    let absent = Lease {
        ticker: Ticker::parse("MSFT").unwrap(),
        ..lease("exe-d", t0 + 900)
    };
    store.release("p1", &absent.ticker, "exe-d").await.unwrap();
    let gone = client
        .get_item()
        .table_name(&table)
        .key("lease_key", AttributeValue::S("p1#MSFT".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert!(gone.item.is_none());
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn a_run_holds_its_lease_unless_another_live_execution_has_it() {
    let config = emulator().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = create_table(&client, "leases", "lease_key").await;
    let store = DynamoLeaseStore::new(client.clone(), &table);
    let t0 = 1_700_000_000;
    let expires =
        |raw: &std::collections::HashMap<String, AttributeValue>| raw["expires_at"].clone();

    // Absent: held, enqueued, with its expiry and TTL.
    assert_eq!(
        store.hold(&lease("exe-a", t0 + 121), t0).await.unwrap(),
        HoldOutcome::Held
    );
    let raw = raw_get(&client, &table, "lease_key", "p1#AAPL").await;
    assert_eq!(raw["execution_id"], AttributeValue::S("exe-a".into()));
    assert_eq!(raw["pipeline_id"], AttributeValue::S("p1".into()));
    assert_eq!(raw["ticker"], AttributeValue::S("AAPL".into()));
    assert_eq!(expires(&raw), AttributeValue::N((t0 + 121).to_string()));
    assert_eq!(raw["enqueued"], AttributeValue::Bool(true));
    assert_eq!(
        raw["ttl"],
        AttributeValue::N((t0 + 121 + LEASE_TTL_GRACE_SECS).to_string())
    );
    // Ours: extended to a later expiry, a shorter one keeps the longer.
    assert_eq!(
        store.hold(&lease("exe-a", t0 + 300), t0 + 5).await.unwrap(),
        HoldOutcome::Held
    );
    assert_eq!(
        store.hold(&lease("exe-a", t0 + 200), t0 + 6).await.unwrap(),
        HoldOutcome::Held
    );
    let raw = raw_get(&client, &table, "lease_key", "p1#AAPL").await;
    assert_eq!(expires(&raw), AttributeValue::N((t0 + 300).to_string()));
    // Another live execution's: lost, nothing changed.
    assert_eq!(
        store
            .hold(&lease("exe-b", t0 + 400), t0 + 300)
            .await
            .unwrap(),
        HoldOutcome::Lost {
            execution_id: "exe-a".into(),
            expires_at: t0 + 300
        }
    );
    // Expired: taken over.
    assert_eq!(
        store
            .hold(&lease("exe-b", t0 + 500), t0 + 301)
            .await
            .unwrap(),
        HoldOutcome::Held
    );
    let raw = raw_get(&client, &table, "lease_key", "p1#AAPL").await;
    assert_eq!(raw["execution_id"], AttributeValue::S("exe-b".into()));
    // A claim by the dispatcher for a held, enqueued lease of the same execution is not re-sent.
    assert_eq!(
        store
            .claim(&lease("exe-b", t0 + 500), t0 + 302)
            .await
            .unwrap(),
        ClaimOutcome::AlreadyEnqueued
    );
}

fn request(signal_id: &str) -> ExecutionRequest {
    let mut request = fixtures::request("p1", signal_id, 1_700_000_000);
    request.signal_context.confidence = 75.5;
    request.signal_context.metadata = serde_json::from_value(
        json!({"timeframe": "5", "current_rsi": 28.4, "current_price": 187}),
    )
    .unwrap();
    request.enqueued_at_ms = 1_700_000_000_123;
    request
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn an_execution_runs_once_and_a_crashed_run_is_taken_over() {
    let config = emulator().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = create_executions_table(&client).await;
    let store = DynamoExecutionStore::new(client.clone(), &table);
    let req = request("sig-1");
    let id = req.execution_id.clone();
    let t0 = 1_700_000_010;

    assert_eq!(store.get_execution(&id).await.unwrap(), None);
    assert_eq!(
        store.begin(&req, t0, t0 + 720).await.unwrap(),
        BeginOutcome::Started { attempt: 1 }
    );
    let running = store.get_execution(&id).await.unwrap().unwrap();
    assert_eq!(running, ExecutionRecord::started(&req, t0, 1, t0 + 720));
    let raw = raw_get(&client, &table, "execution_id", &id).await;
    assert_eq!(
        raw["ttl"],
        AttributeValue::N((t0 + EXECUTION_RETENTION_SECS).to_string())
    );
    assert!(!raw.contains_key("completed_at"), "None fields are absent");

    // A redelivery while the first run is in progress.
    assert_eq!(
        store.begin(&req, t0 + 5, t0 + 725).await.unwrap(),
        BeginOutcome::InProgress { until: t0 + 720 }
    );
    // The first worker crashed: after its window another one takes over as attempt 2.
    assert_eq!(
        store.begin(&req, t0 + 721, t0 + 1441).await.unwrap(),
        BeginOutcome::Started { attempt: 2 }
    );
    let second = store.get_execution(&id).await.unwrap().unwrap();
    assert_eq!(second.attempts, 2);
    assert_eq!(second.created_at, t0, "created_at is the first attempt's");
    assert_eq!(second.started_at, Some(t0 + 721));

    // The crashed worker wakes up: its finish is refused.
    let mut stale = ExecutionRecord::started(&req, t0, 1, t0 + 720);
    stale
        .finish(ExecutionStatus::Failed, t0 + 722, Some("late".into()))
        .unwrap();
    assert!(!store.finish(&stale).await.unwrap());
    // Its release is a no-op too.
    store.release(&id, 1).await.unwrap();
    assert_eq!(
        store.get_execution(&id).await.unwrap().unwrap().status,
        ExecutionStatus::Running
    );

    let mut done = ExecutionRecord::started(&req, t0 + 721, 2, t0 + 1441);
    done.decision = Some("order_placed".into());
    done.order_id = Some(ids::order_id(&id));
    done.finish(ExecutionStatus::Completed, t0 + 730, None)
        .unwrap();
    assert!(store.finish(&done).await.unwrap());
    let stored = store.get_execution(&id).await.unwrap().unwrap();
    assert_eq!(
        stored,
        ExecutionRecord {
            created_at: t0,
            ..done.clone()
        }
    );
    assert!(
        !raw_get(&client, &table, "execution_id", &id)
            .await
            .contains_key("in_progress_until")
    );
    // Finishing twice is refused, and a redelivery sees the terminal status.
    assert!(!store.finish(&done).await.unwrap());
    assert_eq!(
        store.begin(&req, t0 + 2000, t0 + 2720).await.unwrap(),
        BeginOutcome::AlreadyFinished(ExecutionStatus::Completed)
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn a_released_execution_begins_again_at_once() {
    let config = emulator().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = create_executions_table(&client).await;
    let store = DynamoExecutionStore::new(client.clone(), &table);
    let req = request("sig-2");
    let id = req.execution_id.clone();
    let t0 = 1_700_000_100;

    assert_eq!(
        store.begin(&req, t0, t0 + 720).await.unwrap(),
        BeginOutcome::Started { attempt: 1 }
    );
    store.release(&id, 1).await.unwrap();
    let pending = store.get_execution(&id).await.unwrap().unwrap();
    assert_eq!(pending.status, ExecutionStatus::Pending);
    assert_eq!(pending.in_progress_until, None);
    assert_eq!(
        store.begin(&req, t0 + 1, t0 + 721).await.unwrap(),
        BeginOutcome::Started { attempt: 2 }
    );
    let mut skipped = ExecutionRecord::started(&req, t0 + 1, 2, t0 + 721);
    skipped.decision = Some("pipeline_inactive".into());
    skipped
        .finish(ExecutionStatus::Skipped, t0 + 2, None)
        .unwrap();
    assert!(store.finish(&skipped).await.unwrap());
    assert_eq!(
        store.begin(&req, t0 + 3, t0 + 723).await.unwrap(),
        BeginOutcome::AlreadyFinished(ExecutionStatus::Skipped)
    );
    // The GSI holds it under its pipeline.
    let by_pipeline = client
        .query()
        .table_name(&table)
        .index_name("by-pipeline")
        .key_condition_expression("pipeline_id = :p")
        .expression_attribute_values(":p", AttributeValue::S("p1".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(by_pipeline.items().len(), 1);
}

fn order(execution_id: &str) -> PaperOrder {
    serde_json::from_value(json!({
        "order_id": ids::order_id(execution_id),
        "execution_id": execution_id,
        "pipeline_id": "p1",
        "user_id": "u1",
        "ticker": "AAPL",
        "signal_id": "sig-1",
        "side": "BUY",
        "quantity": 26,
        "entry_price": 187.2,
        "stop_price": 180.0,
        "target_price": 201.6,
        "mode": "paper",
        "created_at": 1_700_000_000
    }))
    .unwrap()
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn an_order_is_written_once() {
    let config = emulator().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = create_table(&client, "orders", "order_id").await;
    let store = DynamoOrderStore::new(client.clone(), &table);
    let first = order("exe-1");

    assert_eq!(store.place(&first).await.unwrap(), PlaceOutcome::Created);
    let mut retried = first.clone();
    retried.quantity = 99;
    assert_eq!(
        store.place(&retried).await.unwrap(),
        PlaceOutcome::AlreadyExists
    );
    let raw = raw_get(&client, &table, "order_id", &first.order_id).await;
    let stored: PaperOrder = tradeflow_aws::item::from_item(raw).unwrap();
    assert_eq!(stored, first);
    // Read back as stored (the first attempt's), absent as None.
    assert_eq!(store.get(&first.order_id).await.unwrap(), Some(first));
    assert_eq!(store.get("ord-absent").await.unwrap(), None);
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn an_execution_record_over_the_item_size_limit_is_a_permanent_error() {
    let config = emulator().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = create_executions_table(&client).await;
    let store = DynamoExecutionStore::new(client.clone(), &table);
    let mut big = request("sig-big");
    big.signal_context
        .metadata
        .values
        .insert("notes".into(), json!("x".repeat(450 * 1024)));
    let err = store
        .begin(&big, 1_700_000_000, 1_700_000_121)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Permanent { .. }),
        "{}",
        error_chain(&err)
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn a_cursor_moves_only_from_the_expected_value() {
    let config = emulator().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = create_table(&client, "cursors", "stream").await;
    let store = DynamoCursorStore::new(client.clone(), &table);
    let stream = "rsi_generator#AAPL#5";

    assert_eq!(store.get_cursor(stream).await.unwrap(), None);
    assert!(!store.advance(stream, Some(100), 200).await.unwrap());
    assert!(store.advance(stream, None, 100).await.unwrap());
    assert!(!store.advance(stream, None, 200).await.unwrap());
    assert!(!store.advance(stream, Some(50), 200).await.unwrap());
    assert_eq!(store.get_cursor(stream).await.unwrap(), Some(100));
    assert!(store.advance(stream, Some(100), 400).await.unwrap());
    assert_eq!(store.get_cursor(stream).await.unwrap(), Some(400));
    let raw = raw_get(&client, &table, "stream", stream).await;
    assert!(matches!(raw["updated_at"], AttributeValue::N(_)));
}

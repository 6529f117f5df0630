//! The ports' contracts as executable checks, run against both implementations: the in-memory
//! fakes (this crate's tests) and the DynamoDB adapters on the emulator (`tradeflow-aws`'s
//! `tests/contract.rs`). A handler test on the fakes proves something about production only as far
//! as the fakes keep these contracts; where the two disagree, the fake is wrong.
//!
//! Each function checks one documented contract of a port (see [`crate::ports`]) and panics with
//! the contract's name when it does not hold. They take the port as a trait object, a `unique`
//! string no other check (or run) uses, from which every key is derived, and `now` (Unix seconds)
//! for the stores that are given the time. [`lease_store`], [`execution_store`], [`order_store`],
//! [`cursor_store`] and [`pipeline_store`] run every check of one port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::error::StoreError;
use crate::execution::{ExecutionRecord, ExecutionRequest, ExecutionStatus};
use crate::order::{OrderSide, PaperOrder};
use crate::pipeline::Pipeline;
use crate::ports::*;
use crate::vocab::Ticker;

use super::fixtures;

/// Names of every check, in the order the port suites run them (for reports).
pub const CONTRACTS: &[&str] = &[
    "lease: claim when absent",
    "lease: claim refused while held, holder returned",
    "lease: claim after expiry (expiry is strictly after expires_at)",
    "lease: claim again by the same execution before its run started (Reclaimed, refreshed)",
    "lease: AlreadyEnqueued once its run holds it, until it expires",
    "lease: Reclaimed only over the same execution's lease, Claimed over another's",
    "lease: release only by the owner",
    "execution: begin when absent starts attempt 1",
    "execution: begin refused as InProgress while RUNNING within its window",
    "execution: begin takes over a RUNNING record past its window, counting attempts",
    "execution: finish only for the current attempt's RUNNING record",
    "execution: begin refused as AlreadyFinished for every final status",
    "execution: release puts only the current attempt's RUNNING record back to PENDING",
    "order: place Created, then AlreadyExists without overwriting",
    "cursor: advance only from the expected value",
    "pipeline: put, get and list signal pipelines",
    "lease: hold when absent (held, enqueued, idempotent)",
    "lease: hold after expiry",
    "lease: hold when ours extends the expiry, never shortens it",
    "lease: hold Lost to another live holder, nothing changed",
    "order: get None, then the placed order, the first one kept",
    "execution: a record over the item size limit is a permanent error, nothing written",
    "ledger: end_run writes the record, the order and the lease release together",
    "ledger: TakenOver, OrderExists, LeaseNotOurs each cancel the whole end, nothing written",
    "pipeline: changed_since returns written pipelines, inactive ones as Gone",
    "execution: overdue lists RUNNING records past a time, not later ones, released or final ones",
];

fn ticker() -> Ticker {
    Ticker::parse("AAPL").expect("constant ticker")
}

fn lease(unique: &str, execution: &str, expires_at: i64) -> Lease {
    Lease {
        pipeline_id: format!("{unique}-p"),
        ticker: ticker(),
        execution_id: format!("{unique}-{execution}"),
        expires_at,
    }
}

/// `Held` by `holder` until `expires_at`, as another execution's claim sees it.
async fn assert_held_by(
    leases: &dyn LeaseStore,
    contract: &str,
    holder: &Lease,
    now: i64,
    probe: &str,
) {
    let other = Lease {
        execution_id: format!("{}-{probe}", holder.pipeline_id),
        ..holder.clone()
    };
    assert_eq!(
        leases.claim(&other, now).await.unwrap(),
        ClaimOutcome::Held {
            execution_id: holder.execution_id.clone(),
            expires_at: holder.expires_at
        },
        "{contract}: another execution's claim must see the holder"
    );
}

/// Claim when the lease is absent; the lease is then held by the claimer.
pub async fn lease_claim_when_absent(leases: &dyn LeaseStore, unique: &str, now: i64) {
    let c = CONTRACTS[0];
    let a = lease(unique, "a", now + 60);
    assert_eq!(
        leases.claim(&a, now).await.unwrap(),
        ClaimOutcome::Claimed,
        "{c}"
    );
    assert_held_by(leases, c, &a, now, "probe").await;
}

/// A live lease held by another execution, enqueued or not, is refused with the holder.
pub async fn lease_claim_refused_while_held(leases: &dyn LeaseStore, unique: &str, now: i64) {
    let c = CONTRACTS[1];
    let a = lease(unique, "a", now + 60);
    let b = lease(unique, "b", now + 90);
    assert_eq!(leases.claim(&a, now).await.unwrap(), ClaimOutcome::Claimed);
    assert_eq!(
        leases.claim(&b, now).await.unwrap(),
        ClaimOutcome::Held {
            execution_id: a.execution_id.clone(),
            expires_at: a.expires_at
        },
        "{c}: not started"
    );
    assert_eq!(leases.hold(&a, now).await.unwrap(), HoldOutcome::Held);
    assert_eq!(
        leases.claim(&b, now + 30).await.unwrap(),
        ClaimOutcome::Held {
            execution_id: a.execution_id.clone(),
            expires_at: a.expires_at
        },
        "{c}: started"
    );
}

/// A lease is free once `now` is past `expires_at` (`expires_at < now`); at `expires_at` it is
/// still held.
pub async fn lease_claim_after_expiry(leases: &dyn LeaseStore, unique: &str, now: i64) {
    let c = CONTRACTS[2];
    let a = lease(unique, "a", now + 60);
    let b = lease(unique, "b", now + 200);
    assert_eq!(leases.claim(&a, now).await.unwrap(), ClaimOutcome::Claimed);
    assert_eq!(leases.hold(&a, now).await.unwrap(), HoldOutcome::Held);
    assert!(
        matches!(
            leases.claim(&b, now + 60).await.unwrap(),
            ClaimOutcome::Held { .. }
        ),
        "{c}: still held at expires_at"
    );
    assert_eq!(
        leases.claim(&b, now + 61).await.unwrap(),
        ClaimOutcome::Claimed,
        "{c}: free after expires_at"
    );
    assert_held_by(leases, c, &b, now + 61, "probe").await;
    // The old holder lost it: its claim changes nothing.
    assert_eq!(
        leases.claim(&a, now + 61).await.unwrap(),
        ClaimOutcome::Held {
            execution_id: b.execution_id.clone(),
            expires_at: b.expires_at
        },
        "{c}: the old holder sees the new one"
    );
}

/// The same execution may claim again while its run has not started (a dispatcher retry): the
/// claim replaces the lease (new expiry) and says it was this execution's already.
pub async fn lease_claim_again_before_enqueue(leases: &dyn LeaseStore, unique: &str, now: i64) {
    let c = CONTRACTS[3];
    let a = lease(unique, "a", now + 60);
    assert_eq!(leases.claim(&a, now).await.unwrap(), ClaimOutcome::Claimed);
    let again = Lease {
        expires_at: now + 120,
        ..a.clone()
    };
    assert_eq!(
        leases.claim(&again, now + 10).await.unwrap(),
        ClaimOutcome::Reclaimed,
        "{c}"
    );
    assert_held_by(leases, c, &again, now + 10, "probe").await;
}

/// Once its run holds the lease (`hold`), the same execution's claim answers AlreadyEnqueued (do
/// not send again), until the lease expires: then the claim takes it again (`Reclaimed`).
pub async fn lease_already_enqueued(leases: &dyn LeaseStore, unique: &str, now: i64) {
    let c = CONTRACTS[4];
    let a = lease(unique, "a", now + 60);
    assert_eq!(leases.claim(&a, now).await.unwrap(), ClaimOutcome::Claimed);
    assert_eq!(leases.hold(&a, now).await.unwrap(), HoldOutcome::Held);
    assert_eq!(
        leases.claim(&a, now + 1).await.unwrap(),
        ClaimOutcome::AlreadyEnqueued,
        "{c}"
    );
    assert_eq!(
        leases.claim(&a, now + 60).await.unwrap(),
        ClaimOutcome::AlreadyEnqueued,
        "{c}: at expires_at"
    );
    let later = Lease {
        expires_at: now + 200,
        ..a.clone()
    };
    assert_eq!(
        leases.claim(&later, now + 61).await.unwrap(),
        ClaimOutcome::Reclaimed,
        "{c}: expired"
    );
    // The claim starts it over: not started.
    assert_eq!(
        leases.claim(&later, now + 62).await.unwrap(),
        ClaimOutcome::Reclaimed,
        "{c}: a reclaimed lease starts not started"
    );
}

/// `Reclaimed` only when the lease was the same execution's: over another execution's expired
/// lease, or a released one, the claim is `Claimed`.
pub async fn lease_reclaimed_only_for_the_same_execution(
    leases: &dyn LeaseStore,
    unique: &str,
    now: i64,
) {
    let c = CONTRACTS[5];
    let a = lease(unique, "a", now + 60);
    let b = lease(unique, "b", now + 200);
    assert_eq!(leases.claim(&a, now).await.unwrap(), ClaimOutcome::Claimed);
    assert_eq!(
        leases.claim(&b, now + 61).await.unwrap(),
        ClaimOutcome::Claimed,
        "{c}: over another execution's expired lease"
    );
    leases
        .release(&b.pipeline_id, &b.ticker, &b.execution_id)
        .await
        .unwrap();
    assert_eq!(
        leases.claim(&b, now + 62).await.unwrap(),
        ClaimOutcome::Claimed,
        "{c}: after its own release"
    );
    assert_held_by(leases, c, &b, now + 62, "probe").await;
}

/// `release` frees the lease only for its holder; anyone else's release (or one of an absent
/// lease) is a no-op, not an error.
pub async fn lease_release_only_by_owner(leases: &dyn LeaseStore, unique: &str, now: i64) {
    let c = CONTRACTS[6];
    let a = lease(unique, "a", now + 60);
    let b = lease(unique, "b", now + 60);
    leases
        .release(&a.pipeline_id, &a.ticker, &a.execution_id)
        .await
        .expect("releasing an absent lease is a no-op");
    assert_eq!(leases.claim(&a, now).await.unwrap(), ClaimOutcome::Claimed);
    leases
        .release(&b.pipeline_id, &b.ticker, &b.execution_id)
        .await
        .unwrap();
    assert_held_by(leases, c, &a, now, "probe").await;
    leases
        .release(&a.pipeline_id, &a.ticker, &a.execution_id)
        .await
        .unwrap();
    assert_eq!(
        leases.claim(&b, now).await.unwrap(),
        ClaimOutcome::Claimed,
        "{c}: free after the owner's release"
    );
}

/// Every lease contract.
pub async fn lease_store(leases: &dyn LeaseStore, unique: &str, now: i64) {
    lease_claim_when_absent(leases, &format!("{unique}-absent"), now).await;
    lease_claim_refused_while_held(leases, &format!("{unique}-held"), now).await;
    lease_claim_after_expiry(leases, &format!("{unique}-expiry"), now).await;
    lease_claim_again_before_enqueue(leases, &format!("{unique}-again"), now).await;
    lease_already_enqueued(leases, &format!("{unique}-enq"), now).await;
    lease_reclaimed_only_for_the_same_execution(leases, &format!("{unique}-reclaim"), now).await;
    lease_release_only_by_owner(leases, &format!("{unique}-release"), now).await;
    lease_hold_when_absent(leases, &format!("{unique}-hold-absent"), now).await;
    lease_hold_when_expired(leases, &format!("{unique}-hold-expired"), now).await;
    lease_hold_when_ours_extends(leases, &format!("{unique}-hold-ours"), now).await;
    lease_hold_lost_to_a_live_holder(leases, &format!("{unique}-hold-lost"), now).await;
}

fn request(unique: &str, now: i64) -> ExecutionRequest {
    fixtures::request(&format!("{unique}-p"), &format!("{unique}-sig"), now)
}

async fn stored(executions: &dyn ExecutionStore, id: &str) -> ExecutionRecord {
    executions
        .get_execution(id)
        .await
        .unwrap()
        .expect("the record exists")
}

/// `begin` on an absent record writes attempt 1's RUNNING record.
pub async fn execution_begin_when_absent(executions: &dyn ExecutionStore, unique: &str, now: i64) {
    let c = CONTRACTS[7];
    let req = request(unique, now);
    assert_eq!(
        executions.get_execution(&req.execution_id).await.unwrap(),
        None
    );
    assert_eq!(
        executions.begin(&req, now, now + 100).await.unwrap(),
        BeginOutcome::Started { attempt: 1 },
        "{c}"
    );
    assert_eq!(
        stored(executions, &req.execution_id).await,
        ExecutionRecord::started(&req, now, 1, now + 100),
        "{c}: the stored record"
    );
}

/// While RUNNING and `now <= in_progress_until`, `begin` is refused with the window's end.
pub async fn execution_begin_in_progress(executions: &dyn ExecutionStore, unique: &str, now: i64) {
    let c = CONTRACTS[8];
    let req = request(unique, now);
    executions.begin(&req, now, now + 100).await.unwrap();
    for at in [now, now + 50, now + 100] {
        assert_eq!(
            executions.begin(&req, at, at + 100).await.unwrap(),
            BeginOutcome::InProgress { until: now + 100 },
            "{c}: at {at}"
        );
    }
    assert_eq!(
        stored(executions, &req.execution_id).await.attempts,
        1,
        "{c}"
    );
}

/// Past its window a RUNNING record is taken over (a crashed worker): attempt 2, the new window,
/// the first attempt's `created_at` kept.
pub async fn execution_begin_takes_over_expired(
    executions: &dyn ExecutionStore,
    unique: &str,
    now: i64,
) {
    let c = CONTRACTS[9];
    let req = request(unique, now);
    executions.begin(&req, now, now + 100).await.unwrap();
    assert_eq!(
        executions.begin(&req, now + 101, now + 300).await.unwrap(),
        BeginOutcome::Started { attempt: 2 },
        "{c}"
    );
    let mut expected = ExecutionRecord::started(&req, now + 101, 2, now + 300);
    expected.created_at = now;
    assert_eq!(stored(executions, &req.execution_id).await, expected, "{c}");
    assert_eq!(
        executions.begin(&req, now + 301, now + 400).await.unwrap(),
        BeginOutcome::Started { attempt: 3 },
        "{c}: again"
    );
}

fn finished(mut record: ExecutionRecord, status: ExecutionStatus, at: i64) -> ExecutionRecord {
    record.finish(status, at, None).unwrap();
    record
}

/// `finish` writes only over the current attempt's RUNNING record: `false` for an absent record,
/// an earlier attempt, or a record already final. The stored record is the finished one with the
/// first attempt's `created_at`.
pub async fn execution_finish_current_attempt_only(
    executions: &dyn ExecutionStore,
    unique: &str,
    now: i64,
) {
    let c = CONTRACTS[10];
    let req = request(unique, now);
    let first = ExecutionRecord::started(&req, now, 1, now + 100);
    assert!(
        !executions
            .finish(&finished(
                first.clone(),
                ExecutionStatus::Completed,
                now + 1
            ))
            .await
            .unwrap(),
        "{c}: absent"
    );
    assert_eq!(
        executions.get_execution(&req.execution_id).await.unwrap(),
        None,
        "{c}: finish must not create a record"
    );
    executions.begin(&req, now, now + 100).await.unwrap();
    executions.begin(&req, now + 101, now + 300).await.unwrap();
    assert!(
        !executions
            .finish(&finished(first, ExecutionStatus::Completed, now + 102))
            .await
            .unwrap(),
        "{c}: an earlier attempt"
    );
    let mut second = ExecutionRecord::started(&req, now + 101, 2, now + 300);
    second.decision = Some("order_placed".into());
    second.order_id = Some(format!("{unique}-order"));
    let done = finished(second, ExecutionStatus::Completed, now + 110);
    assert!(
        executions.finish(&done).await.unwrap(),
        "{c}: the current attempt"
    );
    let mut expected = done.clone();
    expected.created_at = now;
    assert_eq!(
        stored(executions, &req.execution_id).await,
        expected,
        "{c}: stored"
    );
    assert!(
        !executions
            .finish(&finished(
                ExecutionRecord::started(&req, now + 101, 2, now + 300),
                ExecutionStatus::Failed,
                now + 120
            ))
            .await
            .unwrap(),
        "{c}: already final"
    );
    assert_eq!(
        stored(executions, &req.execution_id).await.status,
        ExecutionStatus::Completed,
        "{c}"
    );
}

/// A final record is never started again, whatever the time.
pub async fn execution_begin_already_finished(
    executions: &dyn ExecutionStore,
    unique: &str,
    now: i64,
) {
    let c = CONTRACTS[11];
    for status in [
        ExecutionStatus::Completed,
        ExecutionStatus::Failed,
        ExecutionStatus::Skipped,
    ] {
        let req = request(&format!("{unique}-{}", status.as_str()), now);
        executions.begin(&req, now, now + 100).await.unwrap();
        let done = finished(
            ExecutionRecord::started(&req, now, 1, now + 100),
            status,
            now + 1,
        );
        assert!(executions.finish(&done).await.unwrap());
        for at in [now + 2, now + 10_000] {
            assert_eq!(
                executions.begin(&req, at, at + 100).await.unwrap(),
                BeginOutcome::AlreadyFinished(status),
                "{c}: {status:?} at {at}"
            );
        }
    }
}

/// `release(id, attempt)` puts the current attempt's RUNNING record back to PENDING (no window);
/// the next `begin` starts at once with the next attempt. Any other release is a no-op.
pub async fn execution_release_to_pending(executions: &dyn ExecutionStore, unique: &str, now: i64) {
    let c = CONTRACTS[12];
    let req = request(unique, now);
    executions
        .release(&req.execution_id, 1)
        .await
        .expect("releasing an absent record is a no-op");
    assert_eq!(
        executions.get_execution(&req.execution_id).await.unwrap(),
        None,
        "{c}: release must not create a record"
    );
    executions.begin(&req, now, now + 100).await.unwrap();
    executions.release(&req.execution_id, 2).await.unwrap();
    assert_eq!(
        executions.begin(&req, now + 1, now + 101).await.unwrap(),
        BeginOutcome::InProgress { until: now + 100 },
        "{c}: another attempt's release is a no-op"
    );
    executions.release(&req.execution_id, 1).await.unwrap();
    let pending = stored(executions, &req.execution_id).await;
    assert_eq!(
        (pending.status, pending.attempts, pending.in_progress_until),
        (ExecutionStatus::Pending, 1, None),
        "{c}: PENDING without a window"
    );
    assert_eq!(
        executions.begin(&req, now + 2, now + 102).await.unwrap(),
        BeginOutcome::Started { attempt: 2 },
        "{c}: a PENDING record starts at once"
    );
    let mut expected = ExecutionRecord::started(&req, now + 2, 2, now + 102);
    expected.created_at = now;
    assert_eq!(stored(executions, &req.execution_id).await, expected, "{c}");
    // Released on a final record: no-op.
    let done = finished(expected, ExecutionStatus::Skipped, now + 3);
    assert!(executions.finish(&done).await.unwrap());
    executions.release(&req.execution_id, 2).await.unwrap();
    assert_eq!(
        stored(executions, &req.execution_id).await.status,
        ExecutionStatus::Skipped,
        "{c}: a final record stays final"
    );
}

/// A write of a record over DynamoDB's 400 KB item limit fails as a permanent error (never
/// retried) and changes nothing: `begin` of an oversized request, `finish` of an oversized record.
/// Not part of [`execution_store`]: `atomic = false` skips the "changes nothing" checks for the
/// emulator (moto 5.2.5 applies the SET clauses before the oversized one and keeps a partial
/// item; DynamoDB rejects the whole UpdateItem).
pub async fn execution_refuses_an_oversized_record(
    executions: &dyn ExecutionStore,
    unique: &str,
    now: i64,
    atomic: bool,
) {
    let c = CONTRACTS[21];
    let big_text = "x".repeat(450 * 1024);
    let mut big = request(&format!("{unique}-big"), now);
    big.signal_context
        .metadata
        .values
        .insert("notes".into(), serde_json::json!(big_text));
    match executions.begin(&big, now, now + 100).await {
        Err(e @ StoreError::Permanent { .. }) => assert!(!e.is_retryable(), "{c}"),
        other => panic!("{c}: begin of an oversized request: {other:?}"),
    }
    if atomic {
        assert_eq!(
            executions.get_execution(&big.execution_id).await.unwrap(),
            None,
            "{c}: nothing written"
        );
    }
    let req = request(unique, now);
    executions.begin(&req, now, now + 100).await.unwrap();
    let mut record = ExecutionRecord::started(&req, now, 1, now + 100);
    record
        .finish(ExecutionStatus::Failed, now + 1, Some(big_text))
        .unwrap();
    match executions.finish(&record).await {
        Err(e @ StoreError::Permanent { .. }) => assert!(!e.is_retryable(), "{c}"),
        other => panic!("{c}: finish of an oversized record: {other:?}"),
    }
    if atomic {
        assert_eq!(
            stored(executions, &req.execution_id).await,
            ExecutionRecord::started(&req, now, 1, now + 100),
            "{c}: the RUNNING record stays"
        );
    }
}

/// Every execution contract.
pub async fn execution_store(executions: &dyn ExecutionStore, unique: &str, now: i64) {
    execution_begin_when_absent(executions, &format!("{unique}-absent"), now).await;
    execution_begin_in_progress(executions, &format!("{unique}-busy"), now).await;
    execution_begin_takes_over_expired(executions, &format!("{unique}-over"), now).await;
    execution_finish_current_attempt_only(executions, &format!("{unique}-finish"), now).await;
    execution_begin_already_finished(executions, &format!("{unique}-final"), now).await;
    execution_release_to_pending(executions, &format!("{unique}-release"), now).await;
    execution_overdue(executions, &format!("{unique}-overdue"), now).await;
}

/// `overdue(before, limit)` lists the RUNNING records whose `in_progress_until` is before
/// `before`; not a RUNNING record still in its window, nor one released to PENDING or finished.
/// (The table may hold other tests' records: only this test's ids are compared.)
pub async fn execution_overdue(executions: &dyn ExecutionStore, unique: &str, now: i64) {
    let c = CONTRACTS[25];
    let req = |n: &str| request(&format!("{unique}-{n}"), now);
    let (dead, live, released, done) = (req("dead"), req("live"), req("released"), req("done"));
    executions.begin(&dead, now, now + 10).await.unwrap();
    executions.begin(&live, now, now + 1_000).await.unwrap();
    executions.begin(&released, now, now + 10).await.unwrap();
    executions.release(&released.execution_id, 1).await.unwrap();
    executions.begin(&done, now, now + 10).await.unwrap();
    let record = stored(executions, &done.execution_id).await;
    let record = finished(record, ExecutionStatus::Completed, now + 5);
    assert!(executions.finish(&record).await.unwrap(), "{c}");

    let ours = |ids: Vec<String>| -> Vec<String> {
        let mut ids: Vec<String> = ids
            .into_iter()
            .filter(|id| {
                [&dead, &live, &released, &done]
                    .iter()
                    .any(|r| &r.execution_id == id)
            })
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ours(executions.overdue(now + 11, 1_000).await.unwrap()),
        vec![dead.execution_id.clone()],
        "{c}"
    );
    assert_eq!(
        ours(executions.overdue(now + 10, 1_000).await.unwrap()),
        Vec::<String>::new(),
        "{c}: strictly before"
    );
    let mut both = vec![dead.execution_id.clone(), live.execution_id.clone()];
    both.sort();
    assert_eq!(
        ours(executions.overdue(now + 2_000, 1_000).await.unwrap()),
        both,
        "{c}: both RUNNING records once both windows passed"
    );
}

/// A paper order for `unique` (its ids derive from it).
pub fn order(unique: &str, now: i64) -> PaperOrder {
    PaperOrder {
        order_id: format!("{unique}-order"),
        execution_id: format!("{unique}-e"),
        pipeline_id: format!("{unique}-p"),
        user_id: "u1".into(),
        ticker: ticker(),
        signal_id: format!("{unique}-sig"),
        side: OrderSide::Buy,
        quantity: 10,
        entry_price: 100.0,
        stop_price: 98.0,
        target_price: 104.0,
        mode: "paper".into(),
        created_at: now,
    }
}

/// `place` writes an order once: `Created`, then `AlreadyExists` for the same id (even with other
/// contents, which are not written).
pub async fn order_place_once(orders: &dyn OrderStore, unique: &str, now: i64) {
    let c = CONTRACTS[13];
    let o = order(unique, now);
    assert_eq!(
        orders.place(&o).await.unwrap(),
        PlaceOutcome::Created,
        "{c}"
    );
    assert_eq!(
        orders.place(&o).await.unwrap(),
        PlaceOutcome::AlreadyExists,
        "{c}: the same order again"
    );
    let changed = PaperOrder {
        quantity: 99,
        created_at: now + 5,
        ..o
    };
    assert_eq!(
        orders.place(&changed).await.unwrap(),
        PlaceOutcome::AlreadyExists,
        "{c}: another order with the same id"
    );
}

/// Every order contract.
pub async fn order_store(orders: &dyn OrderStore, unique: &str, now: i64) {
    order_place_once(orders, &format!("{unique}-once"), now).await;
    order_get_reads_back(orders, &format!("{unique}-get"), now).await;
}

/// The cursor moves only by compare-and-set from the expected value (`None`: absent).
pub async fn cursor_advance_conditional(cursors: &dyn CursorStore, unique: &str) {
    let c = CONTRACTS[14];
    let stream = format!("{unique}-stream");
    assert_eq!(cursors.get_cursor(&stream).await.unwrap(), None, "{c}");
    assert!(
        !cursors.advance(&stream, Some(0), 10).await.unwrap(),
        "{c}: expected a value, absent"
    );
    assert_eq!(cursors.get_cursor(&stream).await.unwrap(), None, "{c}");
    assert!(
        cursors.advance(&stream, None, 10).await.unwrap(),
        "{c}: from absent"
    );
    assert_eq!(cursors.get_cursor(&stream).await.unwrap(), Some(10), "{c}");
    assert!(
        !cursors.advance(&stream, None, 20).await.unwrap(),
        "{c}: expected absent, present"
    );
    assert!(
        !cursors.advance(&stream, Some(5), 20).await.unwrap(),
        "{c}: another value"
    );
    assert_eq!(cursors.get_cursor(&stream).await.unwrap(), Some(10), "{c}");
    assert!(
        cursors.advance(&stream, Some(10), 20).await.unwrap(),
        "{c}: from expected"
    );
    assert_eq!(cursors.get_cursor(&stream).await.unwrap(), Some(20), "{c}");
}

/// Every cursor contract.
pub async fn cursor_store(cursors: &dyn CursorStore, unique: &str) {
    cursor_advance_conditional(cursors, unique).await;
}

/// `put_pipeline` creates or replaces; `get_pipeline` reads it back (`None` when absent);
/// `load_signal_pipelines` lists the active signal-triggered ones only; an invalid pipeline is
/// refused as a permanent error.
pub async fn pipeline_put_get_list(pipelines: &dyn PipelineStore, unique: &str) {
    let c = CONTRACTS[15];
    let id = format!("{unique}-p");
    assert_eq!(pipelines.get_pipeline(&id).await.unwrap(), None, "{c}");
    let mut p: Pipeline = fixtures::pipeline(&id, "u1", &["AAPL"], serde_json::json!([]));
    pipelines.put_pipeline(&p).await.unwrap();
    assert_eq!(
        pipelines.get_pipeline(&id).await.unwrap().as_ref(),
        Some(&p),
        "{c}"
    );
    let listed = |all: Vec<Pipeline>| all.into_iter().filter(|x| x.pipeline_id == id).count();
    assert_eq!(
        listed(pipelines.load_signal_pipelines().await.unwrap()),
        1,
        "{c}: an active signal pipeline is listed"
    );
    p.is_active = false;
    p.name = "renamed".into();
    pipelines.put_pipeline(&p).await.unwrap();
    assert_eq!(
        pipelines.get_pipeline(&id).await.unwrap().as_ref(),
        Some(&p),
        "{c}: replaced"
    );
    assert_eq!(
        listed(pipelines.load_signal_pipelines().await.unwrap()),
        0,
        "{c}: an inactive pipeline is not listed"
    );
    let mut bad = p.clone();
    bad.max_runtime_secs = 0;
    match pipelines.put_pipeline(&bad).await {
        Err(e @ StoreError::Permanent { .. }) => assert!(!e.is_retryable(), "{c}"),
        other => panic!("{c}: an invalid pipeline must be refused as permanent, got {other:?}"),
    }
    assert_eq!(
        pipelines.get_pipeline(&id).await.unwrap().as_ref(),
        Some(&p),
        "{c}: the refused pipeline is not written"
    );
}

/// `changed_since` returns every pipeline written since the time given: an active one as
/// `Signal`, an inactive one as `Gone`; nothing written after a time in the future.
pub async fn pipeline_changed_since(pipelines: &dyn PipelineStore, unique: &str) {
    let c = CONTRACTS[24];
    let on = fixtures::pipeline(
        &format!("{unique}-on"),
        "u1",
        &["AAPL"],
        serde_json::json!([]),
    );
    let mut off = fixtures::pipeline(
        &format!("{unique}-off"),
        "u1",
        &["AAPL"],
        serde_json::json!([]),
    );
    off.is_active = false;
    pipelines.put_pipeline(&on).await.unwrap();
    pipelines.put_pipeline(&off).await.unwrap();
    let ours = |changes: Vec<PipelineChange>| -> Vec<PipelineChange> {
        let mut ours: Vec<PipelineChange> = changes
            .into_iter()
            .filter(|ch| match ch {
                PipelineChange::Signal(p) => p.pipeline_id.starts_with(unique),
                PipelineChange::Gone(id) => id.starts_with(unique),
            })
            .collect();
        ours.sort_by_key(|ch| matches!(ch, PipelineChange::Gone(_)));
        ours
    };
    assert_eq!(
        ours(pipelines.changed_since(0).await.unwrap()),
        vec![
            PipelineChange::Signal(on),
            PipelineChange::Gone(off.pipeline_id.clone())
        ],
        "{c}"
    );
    // Unix ms of the year 2286: nothing was written after it.
    assert_eq!(
        ours(pipelines.changed_since(10_000_000_000_000).await.unwrap()),
        vec![],
        "{c}: not before `since`"
    );
}

/// Every pipeline contract.
pub async fn pipeline_store(pipelines: &dyn PipelineStore, unique: &str) {
    pipeline_put_get_list(pipelines, unique).await;
    pipeline_changed_since(pipelines, &format!("{unique}-changes")).await;
}

/// `hold` takes an absent lease: held by the execution until its expiry, and enqueued (the
/// dispatcher's claim of the same execution answers AlreadyEnqueued).
pub async fn lease_hold_when_absent(leases: &dyn LeaseStore, unique: &str, now: i64) {
    let c = CONTRACTS[16];
    let a = lease(unique, "a", now + 60);
    assert_eq!(
        leases.hold(&a, now).await.unwrap(),
        HoldOutcome::Held,
        "{c}"
    );
    assert_eq!(
        leases.claim(&a, now).await.unwrap(),
        ClaimOutcome::AlreadyEnqueued,
        "{c}: a held lease counts as enqueued"
    );
    assert_held_by(leases, c, &a, now, "probe").await;
    assert_eq!(
        leases.hold(&a, now + 1).await.unwrap(),
        HoldOutcome::Held,
        "{c}: idempotent"
    );
}

/// `hold` takes a lease expired at `now` (`expires_at < now`) from another execution.
pub async fn lease_hold_when_expired(leases: &dyn LeaseStore, unique: &str, now: i64) {
    let c = CONTRACTS[17];
    let a = lease(unique, "a", now + 60);
    let b = lease(unique, "b", now + 200);
    assert_eq!(leases.claim(&a, now).await.unwrap(), ClaimOutcome::Claimed);
    assert_eq!(leases.hold(&a, now).await.unwrap(), HoldOutcome::Held);
    assert_eq!(
        leases.hold(&b, now + 61).await.unwrap(),
        HoldOutcome::Held,
        "{c}"
    );
    assert_held_by(leases, c, &b, now + 61, "probe").await;
}

/// `hold` of the holder's own lease (claimed by the dispatcher, enqueued or not) keeps it and
/// extends the expiry, never shortens it.
pub async fn lease_hold_when_ours_extends(leases: &dyn LeaseStore, unique: &str, now: i64) {
    let c = CONTRACTS[18];
    let a = lease(unique, "a", now + 60);
    assert_eq!(leases.claim(&a, now).await.unwrap(), ClaimOutcome::Claimed);
    let longer = Lease {
        expires_at: now + 300,
        ..a.clone()
    };
    assert_eq!(
        leases.hold(&longer, now + 1).await.unwrap(),
        HoldOutcome::Held,
        "{c}: not yet enqueued"
    );
    assert_held_by(leases, c, &longer, now + 1, "probe").await;
    assert_eq!(
        leases.claim(&a, now + 2).await.unwrap(),
        ClaimOutcome::AlreadyEnqueued,
        "{c}: held counts as enqueued"
    );
    let shorter = Lease {
        expires_at: now + 100,
        ..a.clone()
    };
    assert_eq!(
        leases.hold(&shorter, now + 2).await.unwrap(),
        HoldOutcome::Held,
        "{c}: a shorter expiry"
    );
    assert_held_by(leases, c, &longer, now + 2, "probe2").await;
}

/// `hold` against another execution's live lease (at `expires_at` it is still live) is `Lost`
/// with the holder, and changes nothing.
pub async fn lease_hold_lost_to_a_live_holder(leases: &dyn LeaseStore, unique: &str, now: i64) {
    let c = CONTRACTS[19];
    let a = lease(unique, "a", now + 60);
    let b = lease(unique, "b", now + 300);
    assert_eq!(leases.claim(&a, now).await.unwrap(), ClaimOutcome::Claimed);
    for at in [now, now + 60] {
        assert_eq!(
            leases.hold(&b, at).await.unwrap(),
            HoldOutcome::Lost {
                execution_id: a.execution_id.clone(),
                expires_at: a.expires_at
            },
            "{c}: at {at}"
        );
    }
    assert_eq!(
        leases.claim(&a, now).await.unwrap(),
        ClaimOutcome::Reclaimed,
        "{c}: the holder's lease is unchanged (still not started)"
    );
}

/// `get` is `None` before the order is placed, then the placed order, and stays the first one
/// after a refused `place` of the same id.
pub async fn order_get_reads_back(orders: &dyn OrderStore, unique: &str, now: i64) {
    let c = CONTRACTS[20];
    let o = order(unique, now);
    assert_eq!(orders.get(&o.order_id).await.unwrap(), None, "{c}: absent");
    assert_eq!(orders.place(&o).await.unwrap(), PlaceOutcome::Created);
    assert_eq!(
        orders.get(&o.order_id).await.unwrap().as_ref(),
        Some(&o),
        "{c}"
    );
    let changed = PaperOrder {
        quantity: 99,
        ..o.clone()
    };
    assert_eq!(
        orders.place(&changed).await.unwrap(),
        PlaceOutcome::AlreadyExists
    );
    assert_eq!(
        orders.get(&o.order_id).await.unwrap().as_ref(),
        Some(&o),
        "{c}: the first order stays"
    );
}

/// The tables a [`RunLedger`] writes, as their stores (to set up and read back).
pub struct LedgerTables<'a> {
    pub executions: &'a dyn ExecutionStore,
    pub orders: &'a dyn OrderStore,
    pub leases: &'a dyn LeaseStore,
}

/// A started run (attempt 1), its claimed lease, and its finished record and order.
async fn started_run(
    t: &LedgerTables<'_>,
    unique: &str,
    now: i64,
) -> (ExecutionRecord, PaperOrder, Lease) {
    let req = request(unique, now);
    assert_eq!(
        t.executions.begin(&req, now, now + 100).await.unwrap(),
        BeginOutcome::Started { attempt: 1 }
    );
    let lease = Lease {
        pipeline_id: req.pipeline_id.clone(),
        ticker: req.ticker.clone(),
        execution_id: req.execution_id.clone(),
        expires_at: now + 720,
    };
    assert_eq!(
        t.leases.claim(&lease, now).await.unwrap(),
        ClaimOutcome::Claimed
    );
    let mut record = ExecutionRecord::started(&req, now, 1, now + 100);
    let order = PaperOrder {
        order_id: crate::ids::order_id(&req.execution_id),
        execution_id: req.execution_id.clone(),
        pipeline_id: req.pipeline_id.clone(),
        ticker: req.ticker.clone(),
        ..self::order(unique, now)
    };
    record.order_id = Some(order.order_id.clone());
    record.decision = Some("order_placed".into());
    record
        .finish(ExecutionStatus::Completed, now + 5, None)
        .expect("a valid transition");
    (record, order, lease)
}

/// `end_run` writes all three: the final record (first `created_at` kept), the order, the lease
/// freed (a new execution claims it `Claimed`).
pub async fn ledger_writes_everything_together(
    ledger: &dyn RunLedger,
    t: &LedgerTables<'_>,
    unique: &str,
    now: i64,
) {
    let c = CONTRACTS[22];
    let (record, order, lease) = started_run(t, unique, now).await;
    let end = RunEnd {
        record: &record,
        order: Some(&order),
        release_lease: true,
    };
    assert_eq!(
        ledger.end_run(&end).await.unwrap(),
        RunEndOutcome::Written,
        "{c}"
    );
    assert_eq!(
        stored(t.executions, &record.execution_id).await,
        record,
        "{c}"
    );
    assert_eq!(
        t.orders.get(&order.order_id).await.unwrap().as_ref(),
        Some(&order),
        "{c}"
    );
    let next = Lease {
        execution_id: format!("{unique}-next"),
        ..lease
    };
    assert_eq!(
        t.leases.claim(&next, now + 6).await.unwrap(),
        ClaimOutcome::Claimed,
        "{c}: the lease is free"
    );
}

/// Each condition failing cancels the whole end, and says which (in the order TakenOver,
/// OrderExists, LeaseNotOurs); nothing of it is written.
pub async fn ledger_cancels_whole(
    ledger: &dyn RunLedger,
    t: &LedgerTables<'_>,
    unique: &str,
    now: i64,
) {
    let c = CONTRACTS[23];
    // The lease taken by another execution after it expired.
    let (record, order, lease) = started_run(t, &format!("{unique}-lease"), now).await;
    let other = Lease {
        execution_id: format!("{unique}-other"),
        expires_at: now + 2_000,
        ..lease.clone()
    };
    assert!(t.leases.claim(&other, now + 721).await.unwrap().is_ours());
    let end = RunEnd {
        record: &record,
        order: Some(&order),
        release_lease: true,
    };
    assert_eq!(
        ledger.end_run(&end).await.unwrap(),
        RunEndOutcome::LeaseNotOurs,
        "{c}"
    );
    assert_eq!(
        stored(t.executions, &record.execution_id).await.status,
        ExecutionStatus::Running,
        "{c}: record not written"
    );
    assert_eq!(
        t.orders.get(&order.order_id).await.unwrap(),
        None,
        "{c}: order not written"
    );
    // Without the release, the end goes through and the other execution keeps its lease.
    let end = RunEnd {
        release_lease: false,
        ..end
    };
    assert_eq!(ledger.end_run(&end).await.unwrap(), RunEndOutcome::Written);
    assert!(matches!(
        t.leases.claim(&lease, now + 722).await.unwrap(),
        ClaimOutcome::Held { .. }
    ));

    // An order with the id exists already.
    let (record, order, _) = started_run(t, &format!("{unique}-order"), now).await;
    let earlier = PaperOrder {
        quantity: 3,
        ..order.clone()
    };
    assert_eq!(
        t.orders.place(&earlier).await.unwrap(),
        PlaceOutcome::Created
    );
    let end = RunEnd {
        record: &record,
        order: Some(&order),
        release_lease: true,
    };
    assert_eq!(
        ledger.end_run(&end).await.unwrap(),
        RunEndOutcome::OrderExists,
        "{c}"
    );
    assert_eq!(
        stored(t.executions, &record.execution_id).await.status,
        ExecutionStatus::Running,
        "{c}: record not written"
    );
    assert_eq!(
        t.orders.get(&order.order_id).await.unwrap(),
        Some(earlier),
        "{c}: the earlier order stays"
    );

    // Another attempt took the run over (attempt 2 is RUNNING): attempt 1's end is refused,
    // even when the order and lease conditions fail too.
    let (record, order, _) = started_run(t, &format!("{unique}-taken"), now).await;
    let req = request(&format!("{unique}-taken"), now);
    assert_eq!(
        t.executions
            .begin(&req, now + 101, now + 300)
            .await
            .unwrap(),
        BeginOutcome::Started { attempt: 2 }
    );
    t.orders.place(&order).await.unwrap();
    let end = RunEnd {
        record: &record,
        order: Some(&order),
        release_lease: true,
    };
    assert_eq!(
        ledger.end_run(&end).await.unwrap(),
        RunEndOutcome::TakenOver,
        "{c}"
    );
    assert_eq!(
        stored(t.executions, &record.execution_id).await.attempts,
        2,
        "{c}: attempt 2's record stays"
    );
}

/// Every ledger contract.
pub async fn run_ledger(ledger: &dyn RunLedger, t: &LedgerTables<'_>, unique: &str, now: i64) {
    ledger_writes_everything_together(ledger, t, &format!("{unique}-all"), now).await;
    ledger_cancels_whole(ledger, t, &format!("{unique}-cancel"), now).await;
}

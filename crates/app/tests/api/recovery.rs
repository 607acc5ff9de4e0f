//! Missed-event replay from `/v1/events` through the handler: a time cursor with an overlap
//! (the log is eventually consistent), the newest seconds never read, a first run that sets the
//! cursor even before any event exists, replays that cost no Stripe call.

use crate::support::{PAID, World, available, completed, order, session, world};
use stockbridge_app::memory::{MemoryCursor, MemoryEventLog};
use stockbridge_app::parking::ParkedState;
use stockbridge_app::ports::{Cursor, LoggedEvent};
use stockbridge_app::reconcile::Budget;
use stockbridge_app::reconcile::recovery::{MAX_CHUNKS_PER_RUN, RecoveryReport, SETTLE_SECS};
use stockbridge_domain::{OrderStatus, StripeEventId};

/// The clock's time (Unix seconds): the in-memory clock starts at the sample event's `created`.
const NOW: i64 = PAID;

fn logged(event_id: &str, session: &str, created: i64) -> LoggedEvent {
    let mut detail = completed(event_id, session)["detail"].clone();
    detail["created"] = created.into();
    LoggedEvent {
        id: StripeEventId::parse(event_id).unwrap(),
        created,
        event: detail,
    }
}

fn at(created: i64) -> MemoryCursor {
    MemoryCursor(std::sync::Mutex::new(Some(Cursor {
        created,
        event_id: None,
    })))
}

fn stored(cursor: &MemoryCursor) -> Cursor {
    cursor.0.lock().unwrap().clone().expect("a cursor")
}

/// One replay run over `log` with an event budget, the default overlap and no time limit.
async fn replay(
    w: &World,
    log: &MemoryEventLog,
    cursor: &MemoryCursor,
    budget: usize,
) -> RecoveryReport {
    w.app
        .recover_missed_events(log, cursor, &w.store, (budget, &Budget::unlimited()), 60)
        .await
        .unwrap()
}

fn stripe_calls(w: &World) -> usize {
    w.payments.calls.lock().unwrap().len()
}

#[tokio::test]
async fn a_dropped_event_is_recovered_exactly_once_and_a_replay_of_a_seen_one_costs_no_stripe_call()
{
    let w = world(&[("prod_a", 5, 0)]);
    session(&w, "cs_seen", &[("prod_a", 1)]);
    session(&w, "cs_dropped", &[("prod_a", 2)]);
    let log = MemoryEventLog::default();
    log.events.lock().unwrap().extend([
        logged("evt_seen", "cs_seen", NOW - 50),
        logged("evt_dropped", "cs_dropped", NOW - 40),
    ]);
    // The seen order came through EventBridge; the dropped one never arrived.
    w.app
        .handle(&completed("evt_seen", "cs_seen"))
        .await
        .unwrap();
    let calls = stripe_calls(&w);
    let cursor = at(NOW - 100);
    let r = replay(&w, &log, &cursor, 100).await;
    assert_eq!(
        (r.listed, r.recovered, r.already_applied),
        (2, 1, 1),
        "{r:?}"
    );
    assert_eq!(r.recovered_orders, vec!["cs_dropped"]);
    assert_eq!(available(&w, "prod_a"), 2);
    assert_eq!(
        stripe_calls(&w) - calls,
        1,
        "only the dropped order's line items"
    );
    assert_eq!(stored(&cursor).created, NOW - SETTLE_SECS);
    assert_eq!(r.cursor.as_deref(), Some("evt_dropped"));
    // The next run re-lists its overlap: both again, no Stripe call, nothing changed.
    let calls = stripe_calls(&w);
    let again = replay(&w, &log, &cursor, 100).await;
    assert_eq!(
        (again.listed, again.recovered, again.already_applied),
        (2, 0, 2)
    );
    assert_eq!(stripe_calls(&w), calls, "a replay costs no Stripe call");
    assert_eq!(available(&w, "prod_a"), 2);
}

#[tokio::test]
async fn an_event_that_shows_up_late_in_the_log_is_still_replayed_within_the_overlap() {
    let w = world(&[("prod_a", 5, 0)]);
    session(&w, "cs_late", &[("prod_a", 1)]);
    let log = MemoryEventLog::default();
    let cursor = at(NOW - 100);
    replay(&w, &log, &cursor, 100).await;
    assert_eq!(stored(&cursor).created, NOW - SETTLE_SECS);
    // Created before the cursor, visible only now (Stripe's list is eventually consistent).
    log.events
        .lock()
        .unwrap()
        .push(logged("evt_late", "cs_late", NOW - 30));
    let r = replay(&w, &log, &cursor, 100).await;
    assert_eq!(r.recovered_orders, vec!["cs_late"]);
    assert_eq!(available(&w, "prod_a"), 4);
}

#[tokio::test]
async fn the_newest_seconds_are_never_read() {
    let w = world(&[("prod_a", 5, 0)]);
    session(&w, "cs_fresh", &[("prod_a", 1)]);
    let log = MemoryEventLog::default();
    log.events
        .lock()
        .unwrap()
        .push(logged("evt_fresh", "cs_fresh", NOW - 1));
    let r = replay(&w, &log, &at(NOW - 100), 100).await;
    assert_eq!(r.listed, 0, "{r:?}");
    assert_eq!(available(&w, "prod_a"), 5);
}

#[tokio::test]
async fn an_event_that_cannot_succeed_is_parked_and_the_replay_goes_on_past_it() {
    let w = world(&[("prod_a", 5, 0)]);
    // No line items for cs_broken in "Stripe": Stripe refuses, which no retry changes.
    session(&w, "cs_after", &[("prod_a", 1)]);
    let log = MemoryEventLog::default();
    log.events.lock().unwrap().extend([
        logged("evt_broken", "cs_broken", NOW - 50),
        logged("evt_after", "cs_after", NOW - 40),
    ]);
    let cursor = at(NOW - 100);
    let r = replay(&w, &log, &cursor, 100).await;
    assert_eq!((r.parked, r.recovered), (1, 1), "{r:?}");
    assert_eq!(available(&w, "prod_a"), 4, "the event after it was applied");
    assert_eq!(stored(&cursor).created, NOW - SETTLE_SECS);
    let parked = w.store.parking.lock().unwrap().clone();
    let record = &parked["event:evt_broken"];
    assert_eq!(record.state, ParkedState::Parked);
    assert!(record.reason.contains("cs_broken"), "{record:?}");
    assert_eq!(
        record.event.as_ref().unwrap()["id"],
        "evt_broken",
        "kept to retry"
    );
    // The next run re-reads the overlap and leaves the parked event alone.
    let calls = stripe_calls(&w);
    let again = replay(&w, &log, &cursor, 100).await;
    assert_eq!((again.set_aside, again.parked), (1, 0), "{again:?}");
    assert_eq!(stripe_calls(&w), calls);
}

#[tokio::test]
async fn a_retryable_failure_keeps_the_cursor_before_it_until_a_later_run() {
    let w = world(&[("prod_a", 5, 0)]);
    session(&w, "cs_ok", &[("prod_a", 1)]);
    session(&w, "cs_flaky", &[("prod_a", 1)]);
    let log = MemoryEventLog::default();
    log.events.lock().unwrap().extend([
        logged("evt_ok", "cs_ok", NOW - 50),
        logged("evt_flaky", "cs_flaky", NOW - 40),
    ]);
    let cursor = at(NOW - 100);
    // The first publish works (evt_ok), the second fails after the commit: retryable.
    w.publisher
        .fail_next
        .store(0, std::sync::atomic::Ordering::SeqCst);
    replay(&w, &log, &cursor, 1).await;
    w.publisher
        .fail_next
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let r = replay(&w, &log, &cursor, 100).await;
    assert!(
        r.stopped.as_deref().unwrap_or("").contains("evt_flaky"),
        "{r:?}"
    );
    assert_eq!(
        stored(&cursor).created,
        NOW - 41,
        "stops before the failure"
    );
    let parked = w.store.parking.lock().unwrap().clone();
    assert_eq!(parked["event:evt_flaky"].state, ParkedState::Retrying);
    // The next run gets past it and forgets the failure.
    let r = replay(&w, &log, &cursor, 100).await;
    assert_eq!(r.stopped, None, "{r:?}");
    assert!(w.store.parking.lock().unwrap().is_empty());
    assert_eq!(available(&w, "prod_a"), 3);
}

#[tokio::test]
async fn the_first_run_sets_the_cursor_even_before_any_event_exists() {
    let w = world(&[("prod_a", 5, 0)]);
    let log = MemoryEventLog::default();
    let cursor = MemoryCursor::default();
    let r = replay(&w, &log, &cursor, 100).await;
    assert!(r.initialized);
    assert_eq!(stored(&cursor).created, NOW - SETTLE_SECS);
    // An event after it, dropped by the delivery path, is replayed by the next run.
    session(&w, "cs_1", &[("prod_a", 1)]);
    log.events
        .lock()
        .unwrap()
        .push(logged("evt_1", "cs_1", NOW - 2));
    w.app
        .clock()
        .0
        .fetch_add(60_000, std::sync::atomic::Ordering::Relaxed);
    let r = replay(&w, &log, &cursor, 100).await;
    assert_eq!(r.recovered_orders, vec!["cs_1"]);
    assert_eq!(available(&w, "prod_a"), 4);
}

#[tokio::test]
async fn a_replayed_order_from_before_the_import_is_history_not_a_recovery() {
    let w = world(&[("prod_a", 0, NOW - 60)]);
    session(&w, "cs_old", &[("prod_a", 1)]);
    let log = MemoryEventLog::default();
    log.events
        .lock()
        .unwrap()
        .push(logged("evt_old", "cs_old", NOW - 90));
    let r = replay(&w, &log, &at(NOW - 100), 100).await;
    assert_eq!((r.history, r.recovered), (1, 0), "{r:?}");
    assert_eq!(order(&w, "cs_old").unwrap().status, OrderStatus::Predates);
    assert!(w.payments.refunds.lock().unwrap().is_empty());
    assert_eq!(available(&w, "prod_a"), 0);
}

#[tokio::test]
async fn an_old_cursor_is_reported_with_its_age_and_caught_up_in_bounded_steps() {
    let w = world(&[]);
    let log = MemoryEventLog::default();
    let cursor = at(NOW - 26 * 86_400);
    let r = replay(&w, &log, &cursor, 100).await;
    assert!(r.more, "{r:?}");
    let moved = stored(&cursor).created - (NOW - 26 * 86_400);
    assert_eq!(
        moved,
        i64::try_from(MAX_CHUNKS_PER_RUN).unwrap()
            * stockbridge_app::reconcile::recovery::CHUNK_SECS
    );
    assert_eq!(r.cursor_age_days, Some(25));
}

#[tokio::test]
async fn a_small_budget_always_moves_the_cursor_even_through_a_busy_second() {
    let w = world(&[("prod_a", 10, 0)]);
    let log = MemoryEventLog::default();
    for i in 0..3 {
        session(&w, &format!("cs_burst{i}"), &[("prod_a", 1)]);
        log.events.lock().unwrap().push(logged(
            &format!("evt_burst{i}"),
            &format!("cs_burst{i}"),
            NOW - 40,
        ));
    }
    session(&w, "cs_later", &[("prod_a", 1)]);
    log.events
        .lock()
        .unwrap()
        .push(logged("evt_later", "cs_later", NOW - 30));
    let cursor = at(NOW - 50);
    // A budget of one: the busy second is finished, then the run stops before the next one.
    let r = replay(&w, &log, &cursor, 1).await;
    assert_eq!((r.recovered, r.more), (3, true), "{r:?}");
    assert_eq!(stored(&cursor).created, NOW - 31);
    // The next run re-reads those three (cheap, outside the budget) and gets the later one.
    let r = replay(&w, &log, &cursor, 1).await;
    assert_eq!((r.recovered, r.already_applied), (1, 3), "{r:?}");
    assert_eq!(available(&w, "prod_a"), 6);
}

#[tokio::test]
async fn a_set_aside_event_is_passed_over_without_becoming_the_cursors_last_replayed_event() {
    let w = world(&[("prod_a", 5, 0)]);
    session(&w, "cs_before", &[("prod_a", 1)]);
    let log = MemoryEventLog::default();
    log.events.lock().unwrap().extend([
        logged("evt_before", "cs_before", NOW - 50),
        logged("evt_broken", "cs_broken", NOW - 40),
    ]);
    let cursor = at(NOW - 100);
    let first = replay(&w, &log, &cursor, 100).await;
    assert_eq!((first.parked, first.recovered), (1, 1), "{first:?}");
    // The next run re-reads the overlap: the parked event is passed over, and the cursor names
    // the last event it replayed, not the one it passed over.
    let again = replay(&w, &log, &cursor, 100).await;
    assert_eq!(again.set_aside, 1, "{again:?}");
    assert_eq!(again.cursor.as_deref(), Some("evt_before"), "{again:?}");
}

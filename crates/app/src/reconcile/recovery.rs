//! Missed-event recovery: replays Stripe's event log (`/v1/events`) through the same idempotent
//! handler the EventBridge path uses, so an event lost on the way (a failed delivery, an outage,
//! a bug) is applied late instead of never.
//!
//! The cursor is a time: every handled event created up to it (Unix seconds) has been seen. Each
//! run lists the handled event types created from `cursor - overlap` up to `now - SETTLE_SECS`,
//! in chunks of at most [`CHUNK_SECS`], oldest first, and hands each to the handler. Two facts
//! about `/v1/events` shape this:
//! - it is eventually consistent: an event can become visible after a newer one, and several
//!   share a second. So each run re-lists an overlap before the cursor (default 60 s) and never
//!   reads the newest [`SETTLE_SECS`]; an order event seen twice costs one read of its order
//!   record and no Stripe call ([`Services::replay_stripe_event`]); a refund or dispute seen
//!   twice costs the reads that find its order (two or three Stripe reads: they are rare);
//! - it keeps events 30 days: a cursor older than [`STALE_CURSOR_DAYS`] is warned about.
//!
//! The first run (no cursor) sets the cursor at its own time, even when Stripe has no event yet,
//! so everything after it is replayed by the next runs; a backfill sets it before it starts.
//!
//! An event that fails stops the replay with the cursor before it, so the next run retries it —
//! unless it cannot succeed (malformed, refused) or has failed [`crate::parking::MAX_ATTEMPTS`]
//! runs: then it is parked with its reason ([`crate::parking`]) and the replay goes on past it.

use stockbridge_domain::{Outcome, Timestamp};
use tracing::{info, warn};

use crate::decode::HANDLED_EVENT_TYPES;
use crate::orders::{Handled, Services};
use crate::parking::{Failure, Failures, ParkingLot};
use crate::ports::{
    Clock, Cursor, CursorStore, EventLog, InventoryStore, Payments, PaymentsError, StockPublisher,
    StoreError,
};

/// Stripe keeps events 30 days; warn well before the cursor falls off the end.
pub const STALE_CURSOR_DAYS: i64 = 25;

/// The newest seconds of the log are never read: events created then may still be on their
/// way into `/v1/events` (Sequin, which reads it for a living, waits about 5 s).
pub const SETTLE_SECS: i64 = 5;

/// One listing covers at most this span, so a cursor that fell far behind is caught up in
/// bounded steps, oldest first.
pub const CHUNK_SECS: i64 = 900;

/// The overlap re-listed before the cursor by default (Unix seconds).
pub const DEFAULT_OVERLAP_SECS: u32 = 60;

/// Listings per run at most: a cursor days behind catches up over several runs.
pub const MAX_CHUNKS_PER_RUN: usize = 48;

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecoveryReport {
    /// Events read from the log (the overlap included).
    pub listed: usize,
    /// Events that changed an order (they had been missed).
    pub recovered: usize,
    /// Events already applied (no-ops).
    pub already_applied: usize,
    /// Orders paid before stockbridge managed their stock, recorded as history.
    pub history: usize,
    /// Events refused or ignored by the handler.
    pub skipped: usize,
    /// Events parked by this run (the replay went on past them).
    pub parked: usize,
    /// Events skipped because they were parked earlier.
    pub set_aside: usize,
    /// Why the replay stopped early, when an event failed and is to be retried by the next run.
    pub stopped: Option<String>,
    /// Recovered order ids (a recovered event is a sign the delivery path dropped it).
    pub recovered_orders: Vec<String>,
    /// The cursor after the run: the last event replayed, or the time it stands at.
    pub cursor: Option<String>,
    /// Age of the cursor in days.
    pub cursor_age_days: Option<i64>,
    /// True when the cursor was created by this run (no replay yet).
    pub initialized: bool,
    /// True when the run stopped at its event or listing budget with more to read.
    pub more: bool,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// Listing events failed.
    #[error("listing Stripe events failed: {0}")]
    Log(#[from] PaymentsError),
    /// Reading or moving the cursor, or recording a failure, failed.
    #[error("the replay cursor or the parking lot: {0}")]
    Cursor(#[from] StoreError),
}

fn age_days(now: Timestamp, created: i64) -> i64 {
    (now.0 / 1000 - created) / 86_400
}

fn describe(cursor: &Cursor) -> String {
    match &cursor.event_id {
        Some(id) => id.to_string(),
        None => crate::message::rfc3339(Timestamp(cursor.created.saturating_mul(1000))),
    }
}

/// Sets the cursor at `now` (less [`SETTLE_SECS`]) when none is stored yet, so every event
/// from then on is replayable; returns the cursor that stands. A report-only run sets it too.
///
/// # Errors
/// [`StoreError`] when the cursor cannot be read or written.
pub async fn ensure_cursor<K: CursorStore>(
    cursors: &K,
    now: Timestamp,
) -> Result<Cursor, StoreError> {
    if let Some(c) = cursors.cursor().await? {
        return Ok(c);
    }
    let first = Cursor {
        created: now.0.div_euclid(1000) - SETTLE_SECS,
        event_id: None,
    };
    match cursors.advance_cursor(None, &first).await {
        Ok(()) => {
            info!(cursor = %describe(&first), "event replay cursor initialised");
            Ok(first)
        }
        // Set concurrently: that one stands.
        Err(StoreError::Conflict) => Ok(cursors.cursor().await?.unwrap_or(first)),
        Err(e) => Err(e),
    }
}

/// Moves the cursor; a concurrent run that moved it first wins (`Conflict` is not an error: the
/// events are idempotent, and that run's cursor is as good).
async fn advance<K: CursorStore>(
    cursors: &K,
    from: &Cursor,
    to: Cursor,
) -> Result<Cursor, StoreError> {
    if to == *from {
        return Ok(to);
    }
    match cursors.advance_cursor(Some(from), &to).await {
        Ok(()) => Ok(to),
        Err(StoreError::Conflict) => Ok(cursors.cursor().await?.unwrap_or(to)),
        Err(e) => Err(e),
    }
}

/// What became of one listed event in a replay.
enum Replayed {
    /// Applied, already applied, or parked: the cursor may pass it.
    Done,
    /// Set aside earlier and still failing: passed over without moving the cursor's event.
    SetAside,
    /// Failed and not parked: the replay stops before it (this reason).
    Stopped(String),
}

impl<Store: InventoryStore, Publisher: StockPublisher, Stripe: Payments, Time: Clock>
    Services<Store, Publisher, Stripe, Time>
{
    /// Replays missed events: at most `budget` events per run, re-listing `overlap_secs` before
    /// the cursor. Without a cursor the run only sets it at its own time. Failures are recorded
    /// in `lot`; a parked event is passed over.
    ///
    /// # Errors
    /// [`RecoveryError`] when Stripe cannot be listed or the table cannot be written; the
    /// cursor never moves past an event that failed and was not parked.
    pub async fn recover_missed_events<L: EventLog, K: CursorStore, Q: ParkingLot>(
        &self,
        log: &L,
        cursors: &K,
        lot: &Q,
        (budget, time): (usize, &crate::reconcile::Budget),
        overlap_secs: u32,
    ) -> Result<RecoveryReport, RecoveryError> {
        let mut report = RecoveryReport::default();
        let upto = self.clock.now().0.div_euclid(1000) - SETTLE_SECS;
        let Some(mut cursor) = cursors.cursor().await? else {
            let first = ensure_cursor(cursors, self.clock.now()).await?;
            report.cursor = Some(describe(&first));
            report.initialized = true;
            return Ok(report);
        };
        let mut failures = Failures::load(lot).await?;
        let mut chunks = 0;
        // The budget counts events newer than the cursor (the overlap re-read is cheap), and a
        // second is always finished: the cursor can then always move.
        let mut fresh = 0;
        let mut last_second = None;
        // At least one listing per run: the overlap is re-read even when no time has passed.
        loop {
            chunks += 1;
            let to = upto.min(cursor.created + CHUNK_SECS).max(cursor.created);
            let from = cursor.created - i64::from(overlap_secs);
            let mut next = Cursor {
                created: to,
                event_id: cursor.event_id.clone(),
            };
            for event in log.events_between(&HANDLED_EVENT_TYPES, from, to).await? {
                // Everything created before this event has been handled: the cursor may stand
                // just before it.
                let before = Cursor {
                    created: cursor.created.max(event.created - 1),
                    event_id: next.event_id.clone(),
                };
                let new = event.created > cursor.created;
                // Out of events or time, but never before one new event: every run moves on.
                let over = fresh >= budget || (fresh > 0 && time.spent());
                if new && over && last_second != Some(event.created) {
                    report.more = true;
                    next = before;
                    break;
                }
                report.listed += 1;
                if new {
                    fresh += 1;
                    last_second = Some(event.created);
                }
                match self.replay_one(&event, &mut failures, &mut report).await? {
                    Replayed::Done => {}
                    // Set aside: passed over, the cursor's event stays the last one replayed.
                    Replayed::SetAside => continue,
                    Replayed::Stopped(reason) => {
                        // Retried by the next run: the cursor stays before it.
                        report.stopped = Some(reason);
                        next = before;
                        break;
                    }
                }
                next.event_id = Some(event.id.clone());
            }
            cursor = advance(cursors, &cursor, next).await?;
            if cursor.created >= upto || report.more || report.stopped.is_some() {
                break;
            }
            if chunks == MAX_CHUNKS_PER_RUN || time.spent() {
                report.more = true;
                break;
            }
        }
        let age = age_days(self.clock.now(), cursor.created);
        if age >= STALE_CURSOR_DAYS {
            warn!(cursor = %describe(&cursor), age_days = age, "the event replay cursor is {age} days old: Stripe keeps events 30 days");
        }
        report.cursor = Some(describe(&cursor));
        report.cursor_age_days = Some(age);
        Ok(report)
    }

    /// Replays one listed event, or passes over it while it is set aside.
    async fn replay_one<Q: ParkingLot>(
        &self,
        event: &crate::ports::LoggedEvent,
        failures: &mut Failures<'_, Q>,
        report: &mut RecoveryReport,
    ) -> Result<Replayed, RecoveryError> {
        let key = format!("event:{}", event.id);
        if failures.set_aside(&key) {
            // Applied since (its delivery came after all): the record goes.
            if self.order_took(&event.event).await.unwrap_or(false) {
                failures.succeeded(&key).await?;
                report.already_applied += 1;
            } else {
                report.set_aside += 1;
            }
            return Ok(Replayed::SetAside);
        }
        // An event that failed after its commit runs through the full handler, so its side
        // effects (publish, links, refund) are run again.
        let result = if failures.retrying(&key) {
            self.handle_stripe_event(&event.event).await
        } else {
            self.replay_stripe_event(&event.event).await
        };
        match result {
            Ok(handled) => {
                failures.succeeded(&key).await?;
                self.count(report, &event.id, handled);
                Ok(Replayed::Done)
            }
            Err(source) => {
                let failure = Failure {
                    id: key,
                    reason: source.to_string(),
                    retryable: source.is_retryable(),
                    event: Some(&event.event),
                };
                if failures.fail(failure, self.clock.now()).await? {
                    report.parked += 1;
                    Ok(Replayed::Done)
                } else {
                    Ok(Replayed::Stopped(format!("event {}: {source}", event.id)))
                }
            }
        }
    }

    fn count(
        &self,
        report: &mut RecoveryReport,
        event_id: &stockbridge_domain::StripeEventId,
        handled: Handled,
    ) {
        match handled {
            Handled::Applied {
                outcome: Outcome::AlreadyApplied(_),
                ..
            } => report.already_applied += 1,
            // A refund or dispute of an order from before stockbridge (or past retention): history.
            Handled::Applied {
                outcome: Outcome::Predates | Outcome::NoOrder,
                ..
            } => report.history += 1,
            Handled::Applied { order_id, outcome } => {
                warn!(stripe_event_id = %event_id, order_id = %order_id, ?outcome, "missed event recovered: the delivery path dropped it");
                report.recovered += 1;
                report.recovered_orders.push(order_id.to_string());
            }
            Handled::Refused | Handled::Ignored => report.skipped += 1,
        }
    }
}

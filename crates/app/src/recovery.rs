//! Missed-event recovery: replays Stripe's event log (`/v1/events`) through the same idempotent
//! handler the EventBridge path uses, so an event lost on the way (a failed delivery, an outage,
//! a bug) is applied late instead of never. Events already applied are no-ops.
//!
//! The cursor is the last event applied. Each run lists the handled event types created after
//! it, oldest first, applies them one by one and moves the cursor after each success — never past
//! an event that failed, so the next run retries it. Stripe keeps events 30 days: a cursor older
//! than [`STALE_CURSOR_DAYS`] is warned about.

use stockbridge_domain::{Outcome, Timestamp};
use tracing::{info, warn};

use crate::events::HANDLED_EVENT_TYPES;
use crate::inventory::{HandleError, Handled, Inventory};
use crate::ports::{
    Clock, Cursor, CursorStore, EventLog, InventoryStore, Payments, PaymentsError, StockPublisher,
    StoreError,
};

/// Stripe keeps events 30 days; warn well before the cursor falls off the end.
pub const STALE_CURSOR_DAYS: i64 = 25;

const PAGE: u32 = 100;

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecoveryReport {
    /// Events read from the log.
    pub listed: usize,
    /// Events that changed an order (they had been missed).
    pub recovered: usize,
    /// Events already applied (no-ops).
    pub already_applied: usize,
    /// Events refused or ignored by the handler.
    pub skipped: usize,
    /// Recovered order ids (a recovered event is a sign the delivery path dropped it).
    pub recovered_orders: Vec<String>,
    /// The cursor after the run.
    pub cursor: Option<String>,
    /// Age of the cursor's event in days, when known.
    pub cursor_age_days: Option<i64>,
    /// True when the cursor was created by this run (no replay yet).
    pub initialized: bool,
    /// True when the run stopped at its event budget with more to read.
    pub more: bool,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// Listing events failed.
    #[error("listing Stripe events failed: {0}")]
    Log(#[from] PaymentsError),
    /// Reading or moving the cursor failed.
    #[error("the replay cursor: {0}")]
    Cursor(#[from] StoreError),
    /// An event failed; the cursor stays before it and the next run retries it.
    #[error("event {event_id} failed (the cursor stays before it): {source}")]
    Event {
        /// The event.
        event_id: String,
        /// The cause.
        #[source]
        source: HandleError,
    },
}

fn age_days(now: Timestamp, created: i64) -> i64 {
    (now.0 / 1000 - created) / 86_400
}

impl<S, P, Y, C> Inventory<S, P, Y, C>
where
    S: InventoryStore,
    P: StockPublisher,
    Y: Payments,
    C: Clock,
{
    /// Replays missed events: at most `budget` events per run. Without a cursor the run only
    /// sets it at the newest event (a backfill or an operator sets an earlier one on purpose).
    ///
    /// # Errors
    /// [`RecoveryError`]; the cursor never moves past an event that failed.
    pub async fn recover_missed_events<L: EventLog, K: CursorStore>(
        &self,
        log: &L,
        cursors: &K,
        budget: usize,
    ) -> Result<RecoveryReport, RecoveryError> {
        let mut report = RecoveryReport::default();
        let Some(mut cursor) = cursors.cursor().await? else {
            if let Some(newest) = log.newest_event(&HANDLED_EVENT_TYPES).await? {
                let next = Cursor {
                    event_id: newest.id,
                    created: newest.created,
                };
                cursors.advance_cursor(None, &next).await?;
                info!(cursor = %next.event_id, "event replay cursor initialised at the newest event");
                report.cursor = Some(next.event_id.to_string());
            }
            report.initialized = true;
            return Ok(report);
        };
        while report.listed < budget {
            let page = log
                .events_after(&cursor.event_id, &HANDLED_EVENT_TYPES, PAGE)
                .await?;
            if page.is_empty() {
                break;
            }
            for event in page {
                if report.listed == budget {
                    report.more = true;
                    break;
                }
                report.listed += 1;
                let handled = self
                    .handle_stripe_event(&event.event)
                    .await
                    .map_err(|source| RecoveryError::Event {
                        event_id: event.id.to_string(),
                        source,
                    })?;
                match handled {
                    Handled::Applied {
                        outcome: Outcome::AlreadyApplied(_),
                        ..
                    } => report.already_applied += 1,
                    Handled::Applied { order_id, outcome } => {
                        warn!(stripe_event_id = %event.id, order_id = %order_id, ?outcome, "missed event recovered: the delivery path dropped it");
                        report.recovered += 1;
                        report.recovered_orders.push(order_id.to_string());
                    }
                    Handled::Refused | Handled::Ignored => report.skipped += 1,
                }
                let next = Cursor {
                    event_id: event.id,
                    created: event.created,
                };
                cursors.advance_cursor(Some(&cursor), &next).await?;
                cursor = next;
            }
        }
        let age = age_days(self.clock.now(), cursor.created);
        if age >= STALE_CURSOR_DAYS {
            warn!(cursor = %cursor.event_id, age_days = age, "the event replay cursor is {age} days old: Stripe keeps events 30 days");
        }
        report.cursor = Some(cursor.event_id.to_string());
        report.cursor_age_days = Some(age);
        Ok(report)
    }
}

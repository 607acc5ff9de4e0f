//! Invariant checks and repairs run by the reconciler (and `stockbridge reconcile`). Every
//! discrepancy is logged and recorded, and — unless it is a dry run, `STOCKBRIDGE_REPAIRS=report`
//! or `stockbridge pause` — repaired. A repair acts only on what stockbridge did or owns.
//!
//! # Layout
//! - this module: refunds of oversold orders, payment links vs stock ([`Services::check_invariants`]);
//! - `sessions`: paid Checkout Sessions without an order;
//! - `awaiting`: orders whose delayed payment settled at Stripe without its event;
//! - `run`: one reconciler run — every phase under its share of the time ([`run`]);
//! - `summary`: what a run reports (`stockbridge status`, the EventBridge event, the metrics).

mod awaiting;
mod links;
pub mod recovery;
mod run;
mod sessions;
mod summary;

pub use run::{RunError, RunOptions, RunReport, run};

/// Where the link check stopped for time (the next run goes on after it).
pub const LINKS_CHECKPOINT: &str = "reconcile_links";
pub use awaiting::AWAITING_WINDOW_MS;
pub use summary::{LAST_RUN_CHECKPOINT, RunSummary, emf_line};

use stockbridge_domain::invariants::{Discrepancy, Repair, check_links, check_refund};
use stockbridge_domain::{
    CatalogItem, Effects, RefundRequest, StoreId, Timestamp, WriteSet, record_links_off,
    refund_idempotency_key,
};
use tracing::{debug, warn};

use crate::effects::{EffectError, SOLD_OUT_MESSAGE, run_effects};
use crate::orders::HandleError;
use crate::orders::Services;
use crate::parking::Failures;
use crate::ports::{
    Clock, PaymentsError, ReconcilerStore, ReconcilerStripe, StockPublisher, StoreError,
};

/// Creation times (Unix seconds, inclusive) of the Checkout Sessions to check for an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindow {
    /// The oldest.
    pub from: i64,
    /// The newest: leave a grace period for events still on their way.
    pub to: i64,
}

impl SessionWindow {
    /// The `hours` before `now` minus `grace_secs` (`None` when `hours` is 0: no check).
    pub fn last_hours(
        now: stockbridge_domain::Timestamp,
        hours: u32,
        grace_secs: u32,
    ) -> Option<Self> {
        let now_s = now.0 / 1000;
        (hours > 0).then(|| Self {
            from: now_s - i64::from(hours) * 3600,
            to: now_s - i64::from(grace_secs),
        })
    }
}

/// What a check found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckReport {
    /// Catalog items examined.
    pub items: usize,
    /// Payment links examined.
    pub links: usize,
    /// Payment links whose Stripe-side limit was set again (docs/link-guard.md).
    pub guards_set: usize,
    /// Oversold orders examined.
    pub oversold_orders: usize,
    /// Completed Checkout Sessions examined.
    pub sessions: usize,
    /// Orders awaiting a delayed payment compared with Stripe.
    pub awaiting_orders: usize,
    /// The earliest management boundary of the items examined (ms): sessions opened before it
    /// are history from before stockbridge and are not examined.
    pub managed_since: Option<i64>,
    /// Discrepancies found.
    pub discrepancies: Vec<Discrepancy>,
    /// How many were repaired.
    pub repaired: usize,
    /// Repairs parked by this run (`{kind}:{id}`): they failed for good and wait for a person.
    pub parked: Vec<String>,
    /// Checks that could not run to their end (the others still ran).
    pub errors: Vec<String>,
    /// Checks that ran out of their share of the run's time (the next run goes on).
    pub unfinished: Vec<&'static str>,
    /// Where the link check stopped for time (`store/product`): the next run starts after it.
    pub links_resume_after: Option<String>,
}

/// Runs one phase of the checks: one that fails is logged and named in `errors`, and the next
/// still runs.
pub(crate) async fn phase<T, E: std::fmt::Display>(
    errors: &mut Vec<String>,
    name: &str,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Option<T> {
    match work.await {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!(phase = name, error = %e, "reconciler phase stopped; the others go on");
            errors.push(format!("{name}: {e}"));
            None
        }
    }
}

/// The sessions to check: those opened after the earliest management boundary of the items the
/// link check read (sessions opened before it are history the merchant's counts include). `None`
/// without a window, or when no item was read — then, if the catalog could not be read (a phase
/// failed), `errors` says the session check was skipped.
pub(crate) fn sessions_to_check(
    window: Option<SessionWindow>,
    managed_since: Option<i64>,
    errors: &mut Vec<String>,
) -> Option<SessionWindow> {
    let w = window?;
    let Some(since) = managed_since else {
        if !errors.is_empty() {
            errors.push("sessions: not checked (the catalog could not be read)".to_owned());
        }
        return None;
    };
    Some(SessionWindow {
        from: w.from.max(since.div_euclid(1000)),
        ..w
    })
}

/// How much time a run has, shared out among its phases: a phase with more work than time
/// stops (where it has a checkpoint, the next run goes on from there) and the phases after it
/// still run, so successive runs always reach every check.
#[derive(Debug, Clone, Copy, Default)]
pub struct Budget {
    deadline: Option<std::time::Instant>,
}

impl Budget {
    /// No limit (the CLI).
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// Until `deadline` (the Lambda's, less a margin to record the summary).
    pub fn until(deadline: std::time::Instant) -> Self {
        Self {
            deadline: Some(deadline),
        }
    }

    /// One phase's share: an equal part of what is left among `phases` phases still to run.
    pub fn share(&self, phases: u32) -> Self {
        Self {
            deadline: self.deadline.map(|d| {
                let now = std::time::Instant::now();
                now + d.saturating_duration_since(now) / phases.max(1)
            }),
        }
    }

    /// True when the run has a deadline (the Lambda); the CLI's runs have none.
    pub fn is_limited(&self) -> bool {
        self.deadline.is_some()
    }

    /// True once the time is up.
    pub fn spent(&self) -> bool {
        self.deadline
            .is_some_and(|d| std::time::Instant::now() >= d)
    }
}

/// Why a check stopped.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Reading the catalog or recording failed.
    #[error("the store: {0}")]
    Store(#[from] StoreError),
    /// Stripe failed.
    #[error("Stripe: {0}")]
    Payments(#[from] PaymentsError),
    /// A repair through the effects runner failed.
    #[error("repair: {0}")]
    Repair(#[from] EffectError),
    /// Applying a session without an order failed.
    #[error("applying checkout session {session}: {source}")]
    Apply {
        /// The session.
        session: String,
        /// The cause.
        #[source]
        source: HandleError,
    },
}

impl<Store: ReconcilerStore, Publisher: StockPublisher, Stripe: ReconcilerStripe, Time: Clock>
    Services<Store, Publisher, Stripe, Time>
{
    /// Runs every invariant check: links vs stock, oversold orders vs refunds, and — with
    /// `sessions` (a window of creation times, Unix seconds) — every paid Checkout Session in it
    /// has an order. The window should end some minutes ago, so sessions whose events are still
    /// on their way are not raced (and not reported as a broken pipeline).
    ///
    /// # Errors
    /// [`CheckError`]; repairs already made stay made.
    pub async fn check_invariants(
        &self,
        store: Option<&StoreId>,
        sessions: Option<SessionWindow>,
        dry_run: bool,
    ) -> Result<CheckReport, CheckError> {
        let mut failures = Failures::load(&self.store).await?;
        let mut report = CheckReport::default();
        let mut errors = Vec::new();
        let unlimited = Budget::unlimited();
        let f = &mut failures;
        // Refunds first: money owed to a customer comes before everything else.
        phase(
            &mut errors,
            "refunds",
            self.check_refunds(store, dry_run, f, &mut report, &unlimited),
        )
        .await;
        phase(
            &mut errors,
            "links",
            self.check_links(store, dry_run, f, &mut report, (&unlimited, None)),
        )
        .await;
        if let Some(window) = sessions_to_check(sessions, report.managed_since, &mut errors) {
            phase(
                &mut errors,
                "sessions",
                self.check_paid_sessions(store, window, dry_run, f, &mut report, &unlimited),
            )
            .await;
        }
        let cutoff = self.awaiting_cutoff(sessions);
        phase(
            &mut errors,
            "awaiting orders",
            self.check_awaiting((store, cutoff), dry_run, f, &mut report, &unlimited),
        )
        .await;
        report.errors = errors;
        Ok(report)
    }

    /// Orders awaiting a delayed payment since before this are compared with Stripe: the end of
    /// the session window (its grace period), or ten minutes ago.
    pub(crate) fn awaiting_cutoff(&self, sessions: Option<SessionWindow>) -> Timestamp {
        sessions.map_or_else(
            || Timestamp(self.clock.now().0 - 600_000),
            |w| Timestamp(w.to.saturating_mul(1000).saturating_add(999)),
        )
    }

    pub(crate) async fn check_refunds(
        &self,
        store: Option<&StoreId>,
        dry_run: bool,
        failures: &mut Failures<'_, Store>,
        report: &mut CheckReport,
        budget: &Budget,
    ) -> Result<(), CheckError> {
        let act = !dry_run && !self.store.controls().await?.refunds_paused;
        let orders = self.store.oversold_orders(store).await?;
        report.oversold_orders = orders.len();
        for order in orders {
            if budget.spent() {
                report.unfinished.push("refunds");
                break;
            }
            let Some(d) = check_refund(&order) else {
                continue;
            };
            let key = format!("refund:{}", order.order_id);
            if failures.set_aside(&key) {
                continue;
            }
            warn!(what = d.what, subject = %d.subject, dry_run, "invariant violated");
            let now = self.clock.now();
            let mut repaired = false;
            if act
                && let Repair::Refund {
                    order_id,
                    payment_intent,
                    amount,
                } = &d.action
            {
                let effects = Effects {
                    refund: Some(RefundRequest {
                        order_id: order_id.clone(),
                        payment_intent: payment_intent.clone(),
                        amount: *amount,
                        idempotency_key: refund_idempotency_key(order_id),
                    }),
                    ..Effects::default()
                };
                match run_effects(
                    (&self.store, &self.publisher, &self.payments),
                    &*self.events,
                    &effects,
                    now,
                )
                .await
                {
                    Ok(()) => {
                        failures.succeeded(&key).await?;
                        repaired = true;
                    }
                    Err(e) => {
                        report.parked.extend(
                            failures
                                .note(key.clone(), e.to_string(), e.is_retryable(), now)
                                .await?,
                        );
                    }
                }
            }
            report.repaired += usize::from(repaired);
            self.store.record(now, &d, repaired).await?;
            report.discrepancies.push(d);
        }
        Ok(())
    }
}

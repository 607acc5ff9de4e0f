//! A hold's PaymentIntent events and the sweeper (see [`crate::reservations`]).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use stockbridge_domain::{
    Decision, Items, OrderId, OrderRecord, OrderStatus, OrderWrite, Outcome, ProductId, Timestamp,
    already_applied, decide_authorized, decide_capture_refused, decide_hold_canceled,
    decide_hold_expired, decide_payment_failed,
};
use tracing::{info, warn};

use crate::decode::{IntentEvent, IntentKind};
use crate::effects::EffectError;
use crate::orders::{HandleError, Services};
use crate::parking::{Parked, ParkedState};
use crate::ports::ListingStore;
use crate::ports::{
    Clock, IntentStatus, InventoryStore, Payments, StockPublisher, StoreError, Window,
};

impl<Store: InventoryStore, Publisher: StockPublisher, Stripe: Payments, Time: Clock>
    Services<Store, Publisher, Stripe, Time>
{
    /// Keeps a buyer's purchase limit in step with a committed transition of their hold: units
    /// count while the hold is pending or a sale, and come back when it leaves both (released,
    /// cancelled, capture refused); a late sale of a released hold takes them again. Best
    /// effort: a lost update never fails the event (a lost give-back errs on the strict side).
    async fn settle_allowance(&self, d: &Decision) {
        let Some(OrderWrite::Update {
            record,
            expected_status,
            ..
        }) = &d.write.order
        else {
            return;
        };
        let Some(a) = record.hold.as_ref().and_then(|h| h.allowance.as_ref()) else {
            return;
        };
        let w = Window {
            key: a.key.clone(),
            start: a.start,
            seconds: a.seconds,
        };
        let r = match (
            expected_status.counts_against_limit(),
            record.status.counts_against_limit(),
        ) {
            (true, false) => self.store.give_back(&w, a.units).await,
            (false, true) => self.store.add(&w, a.units).await,
            _ => return,
        };
        if let Err(e) = r {
            warn!(hold = %record.order_id, error = %e, "keeping the buyer's purchase limit in step failed");
        }
    }

    /// Decides with fresh state, commits (again on a conflict), then runs the effects.
    async fn commit_decision<F, Fut>(
        &self,
        order_id: &OrderId,
        mut decide: F,
    ) -> Result<Option<Decision>, HandleError>
    where
        F: FnMut(Timestamp) -> Fut,
        Fut: Future<Output = Result<Option<Decision>, StoreError>>,
    {
        let store_err = |source| HandleError::Store {
            order_id: order_id.clone(),
            source,
        };
        let decision = self
            .decide_and_commit(order_id, |now| {
                let f = decide(now);
                async move { f.await.map_err(store_err) }
            })
            .await?;
        if let Some(d) = &decision {
            self.settle_allowance(d).await;
            self.run_decision_effects(order_id, d).await?;
        }
        Ok(decision)
    }

    async fn hold_and_items(
        &self,
        hold: &OrderId,
    ) -> Result<Option<(OrderRecord, Items)>, StoreError> {
        let Some(order) = self.store.load_order(hold).await? else {
            return Ok(None);
        };
        let products: Vec<ProductId> = order.products().cloned().collect();
        let (order, items) = crate::shards::load_collected(
            &self.store,
            hold,
            &order.store_id,
            &products,
            self.clock.now(),
        )
        .await?;
        Ok(order.map(|o| (o, items)))
    }

    /// A hold's PaymentIntent event:
    /// - authorised: the hold becomes a sale and is captured (cancelled when it cannot be
    ///   filled). A hold already released is taken again only if Stripe says the PaymentIntent
    ///   is still `requires_capture`: the event may be late, replayed, or older than a cancel.
    /// - failed: a pending hold is released (the buyer may still pay with this PaymentIntent).
    /// - cancelled: terminal ([`decide_hold_canceled`]).
    ///
    /// A capture Stripe refuses for good (the PaymentIntent is no longer capturable) returns the
    /// sale's stock ([`decide_capture_refused`]) and parks `capture:{hold}` for a person,
    /// instead of failing the event for ever.
    pub(crate) async fn apply_intent(&self, event: &IntentEvent) -> Result<Outcome, HandleError> {
        let payments_err = |source| HandleError::Payments {
            order_id: event.hold_id.clone(),
            source,
        };
        // Set when Stripe confirmed the PaymentIntent is capturable (asked at most once).
        let mut capturable: Option<IntentStatus> = None;
        loop {
            let needs_check = AtomicBool::new(false);
            let confirmed = capturable.as_ref();
            let decision = self
                .commit_decision(&event.hold_id, |now| {
                    let needs_check = &needs_check;
                    async move {
                        let Some((order, items)) = self.hold_and_items(&event.hold_id).await? else {
                            return Ok(None);
                        };
                        Ok(Some(match (event.kind, order.status, confirmed) {
                            (IntentKind::Canceled, ..)
                            | (IntentKind::Authorized, _, Some(IntentStatus::Canceled)) => {
                                decide_hold_canceled(&order, &event.event_id, &items, now)
                            }
                            (
                                IntentKind::Authorized,
                                OrderStatus::Released | OrderStatus::Failed,
                                None,
                            ) => {
                                needs_check.store(true, Ordering::Relaxed);
                                return Ok(None);
                            }
                            (
                                IntentKind::Authorized,
                                OrderStatus::Released | OrderStatus::Failed,
                                Some(s),
                            ) if *s != IntentStatus::RequiresCapture => {
                                info!(hold = %event.hold_id, payment_intent = %event.payment_intent, status = ?s, "authorisation for a released hold that Stripe no longer holds: stock not taken again");
                                return Ok(Some(already_applied(&order, &items)));
                            }
                            (IntentKind::Authorized, ..) => decide_authorized(
                                &order,
                                &event.payment_intent,
                                &event.event_id,
                                &items,
                                now,
                            ),
                            (IntentKind::Failed, ..) => decide_payment_failed(
                                Some(&order),
                                &order.order_id,
                                &order.store_id,
                                &event.event_id,
                                &items,
                                now,
                            ),
                        }))
                    }
                })
                .await;
            if needs_check.load(Ordering::Relaxed) && capturable.is_none() {
                let status = self
                    .payments
                    .payment_intent_status(&event.payment_intent)
                    .await
                    .map_err(payments_err)?;
                capturable = Some(status);
                continue;
            }
            return match decision {
                Ok(Some(d)) => {
                    info!(hold = %event.hold_id, payment_intent = %event.payment_intent, kind = ?event.kind, outcome = ?d.outcome, "hold payment event applied");
                    if event.kind == IntentKind::Failed {
                        self.count_failure(event).await;
                    }
                    Ok(d.outcome)
                }
                Ok(None) => {
                    // The hold is written before the PaymentIntent exists, so this is not a
                    // race: the PaymentIntent names a hold this table never had.
                    warn!(hold = %event.hold_id, payment_intent = %event.payment_intent, "PaymentIntent event for an unknown hold: ignored");
                    Ok(Outcome::AlreadyApplied(OrderStatus::Failed))
                }
                Err(HandleError::Effect {
                    source: EffectError::CaptureRefused { status },
                    ..
                }) => self.capture_refused(event, &status).await,
                Err(e) => Err(e),
            };
        }
    }

    /// Every failed authorisation (a buyer may try several cards on one PaymentIntent) counts
    /// against the hold's e-mail and client address for the hour (card testing:
    /// [`crate::reservations::caps`]), once per Stripe event however often it is delivered. Best
    /// effort: a lost count never fails the event.
    async fn count_failure(&self, event: &IntentEvent) {
        let hold = &event.hold_id;
        let terms = match self.store.load_order(hold).await {
            Ok(Some(order)) => order.hold.unwrap_or_default(),
            _ => return,
        };
        let now = self.clock.now();
        let seen = Window::containing(
            format!("failed-event:{}", event.event_id),
            now,
            crate::reservations::caps::FAILURE_WINDOW_SECONDS,
        );
        match self.store.take(&seen, 1, 1).await {
            Ok(true) => {}
            Ok(false) => return, // a redelivery: counted already
            Err(e) => {
                warn!(hold = %hold, error = %e, "counting a failed payment failed");
                return;
            }
        }
        let email = terms
            .email
            .as_deref()
            .map(crate::reservations::caps::email_key);
        for key in email.iter().chain(terms.client.iter()) {
            let w = Window::containing(
                format!("fails:{key}"),
                now,
                crate::reservations::caps::FAILURE_WINDOW_SECONDS,
            );
            if let Err(e) = self.store.add(&w, 1).await {
                warn!(hold = %hold, error = %e, "counting a failed payment failed");
            }
        }
    }

    /// The sale's capture was refused for good: its stock goes back, and the order is parked
    /// for a person (the buyer was never charged; the merchant must not ship).
    async fn capture_refused(
        &self,
        event: &IntentEvent,
        status: &str,
    ) -> Result<Outcome, HandleError> {
        // Parked first (idempotent, by id): once the sale is `capture_failed`, a redelivered
        // event is already applied and would never park it.
        let now = self.clock.now();
        let reason = format!(
            "Stripe refused to capture PaymentIntent {} (status {status}): the sale's stock went back; do not ship, the buyer was not charged",
            event.payment_intent
        );
        tracing::error!(hold = %event.hold_id, payment_intent = %event.payment_intent, %status, "capture refused for good: stock returned, order parked");
        self.store
            .save_parked(&Parked {
                id: format!("capture:{}", event.hold_id),
                reason,
                attempts: 1,
                state: ParkedState::Parked,
                first_failed: now,
                last_failed: now,
                event: None,
            })
            .await
            .map_err(|source| HandleError::Store {
                order_id: event.hold_id.clone(),
                source,
            })?;
        let decision = self
            .commit_decision(&event.hold_id, |now| async move {
                let Some((order, items)) = self.hold_and_items(&event.hold_id).await? else {
                    return Ok(None);
                };
                Ok(decide_capture_refused(&order, &items, now))
            })
            .await?;
        Ok(decision.map_or(Outcome::CaptureRefused, |d| d.outcome))
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Expired holds found.
    pub expired: usize,
    /// Released now.
    pub released: usize,
    /// Settled otherwise meanwhile (authorised or failed first).
    pub raced: usize,
    /// Failed (retried next run).
    pub failed: usize,
    /// Stopped at the deadline with holds left to look at (the next run goes on).
    pub more: bool,
}

/// Holds listed per page: each page is released before the next is read.
pub const SWEEP_PAGE: u32 = 100;

impl<Store: ListingStore, Publisher: StockPublisher, Stripe: Payments, Time: Clock>
    Services<Store, Publisher, Stripe, Time>
{
    /// The sweeper: releases every hold still pending after its expiry; the stock returns and is
    /// published. Each release is conditional on the hold still pending, so an authorisation
    /// racing it resolves to exactly one outcome.
    ///
    /// # Errors
    /// [`StoreError`] when the holds cannot be listed.
    pub async fn sweep_expired_holds(&self) -> Result<SweepReport, StoreError> {
        self.sweep_expired_holds_until(None).await
    }

    /// [`Self::sweep_expired_holds`], page by page, stopping before `deadline` (the Lambda's,
    /// less a margin): holds are released as they are listed, so however large the backlog,
    /// each run releases what it reaches and the next run goes on.
    ///
    /// # Errors
    /// [`StoreError`] when the first page cannot be listed (a later page's failure ends the run
    /// with what it released; the next run goes on).
    pub async fn sweep_expired_holds_until(
        &self,
        deadline: Option<std::time::Instant>,
    ) -> Result<SweepReport, StoreError> {
        let now = self.clock.now();
        let mut report = SweepReport::default();
        let mut after = None;
        loop {
            let page = match self
                .store
                .expired_holds(now, after.as_ref(), SWEEP_PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) if report.expired > 0 => {
                    warn!(error = %e, "listing expired holds failed mid-sweep: the next sweep goes on");
                    report.more = true;
                    return Ok(report);
                }
                Err(e) => return Err(e),
            };
            let out_of_time = || deadline.is_some_and(|d| std::time::Instant::now() >= d);
            for hold in &page.holds {
                // Checked before each hold: a release can wait on Stripe (a link switched
                // back on), and a page is a hundred of them.
                if out_of_time() {
                    report.more = true;
                    return Ok(report);
                }
                report.expired += 1;
                self.release_expired(&hold.order_id, &mut report).await;
            }
            after = page.next;
            if after.is_none() {
                return Ok(report);
            }
        }
    }

    async fn release_expired(&self, order_id: &OrderId, report: &mut SweepReport) {
        let r = self
            .commit_decision(order_id, |now| {
                let id = order_id.clone();
                async move {
                    let Some((order, items)) = self.hold_and_items(&id).await? else {
                        return Ok(None);
                    };
                    Ok(decide_hold_expired(&order, &items, now))
                }
            })
            .await;
        match r {
            Ok(Some(_)) => {
                info!(hold = %order_id, "expired hold released");
                report.released += 1;
            }
            Ok(None) => report.raced += 1,
            Err(e) => {
                warn!(hold = %order_id, error = %e, "releasing an expired hold failed: the next sweep retries");
                report.failed += 1;
            }
        }
    }
}

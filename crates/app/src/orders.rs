//! The inventory use case: a Stripe checkout event in, exactly-once stock out.
//!
//! For each event: decode → load the order and its items → decide (domain) → commit the write
//! set in one conditional transaction → run the effects. A conflict (another order moved the
//! stock, or the same order was applied concurrently) re-reads and decides again. A redelivered
//! event writes nothing and re-runs the effects, so a crash between the commit and an effect
//! loses nothing. The hot path's simple orders (one product, paid, leaving stock) are committed
//! as a take and its record instead (`stockbridge_domain::take`), which no concurrent order
//! refuses.

use std::sync::Arc;

use serde_json::Value;
use stockbridge_domain::{
    Decision, Items, OrderId, OrderLine, OrderRecord, Outcome, PaymentState, ProductId, Quantity,
    StoreId, decide_payment_failed, decide_payment_succeeded, merge_lines,
    take::{Commit, commit_of},
};
use tracing::{debug, error, info, warn};

use crate::decode::{
    self, CheckoutEvent, CheckoutKind, DecodeError, Decoded, EventFilter, SessionPaymentStatus,
};
use crate::effects::{EffectError, run_effects};
use crate::ports::{Clock, InventoryStore, Payments, PaymentsError, StockPublisher, StoreError};
use crate::retry::backoff;

mod after_sale;
mod new;
mod sources;
mod takes;

pub use after_sale::RECORDING_WINDOW_SECS;

/// Configuration of the use case.
#[derive(Debug, Clone)]
pub struct InventoryConfig {
    /// Which events to accept.
    pub filter: EventFilter,
    /// The store of sessions without `metadata.store_id`.
    pub default_store: StoreId,
    /// How many times to re-decide after a conflict before failing the invocation (which Lambda
    /// then retries).
    pub max_attempts: u32,
}

/// What a product's lines cost, as Stripe charged them (minor units).
type Amounts = std::collections::BTreeMap<ProductId, u64>;

/// A session's lines (merged per product) and their amounts, listed once per event.
type Listed = (Vec<OrderLine>, Amounts);

/// Called right after a commit, before any effect (or right after a take, before its record).
/// Tests use it to inject a crash.
pub type AfterCommitHook = Arc<dyn Fn() + Send + Sync>;

/// The use case, generic over its ports.
pub struct Services<Store, Publisher, Stripe, Time> {
    pub(crate) store: Store,
    pub(crate) publisher: Publisher,
    pub(crate) payments: Stripe,
    pub(crate) clock: Time,
    pub(crate) config: InventoryConfig,
    /// Where `stockbridge.order_refunded` goes (nowhere unless [`Self::with_merchant_events`]).
    pub(crate) events: Arc<dyn crate::ports::DynMerchantEvents>,
    after_commit: Option<AfterCommitHook>,
    pub(crate) after_take: Option<AfterCommitHook>,
}

/// What became of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Wrong source or livemode: no effect, no retry.
    Refused,
    /// An event type stockbridge does not handle.
    Ignored,
    /// Applied (or already applied) to an order.
    Applied {
        /// The order.
        order_id: OrderId,
        /// What happened.
        outcome: Outcome,
    },
}

/// Why an event could not be handled. The invocation fails, Lambda retries it, and the
/// dead-letter queue finally holds it.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The event is malformed.
    #[error(transparent)]
    Malformed(#[from] DecodeError),
    /// Stripe's line items for the session are unusable.
    #[error("checkout session {order_id}: line item {index}: {message}")]
    BadLineItem {
        /// The session.
        order_id: OrderId,
        /// Which line.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing the store failed.
    #[error("order {order_id}: {source}")]
    Store {
        /// The order.
        order_id: OrderId,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// Listing line items failed.
    #[error("order {order_id}: {source}")]
    Payments {
        /// The order.
        order_id: OrderId,
        /// The cause.
        #[source]
        source: PaymentsError,
    },
    /// The order's state kept changing under us.
    #[error("order {order_id}: still conflicting after {attempts} attempts; retry later")]
    Contention {
        /// The order.
        order_id: OrderId,
        /// Attempts made.
        attempts: u32,
    },
    /// A refund or dispute of a recent payment whose order is not recorded yet (its checkout
    /// event may still be on its way): retried.
    #[error("order {order_id} is not recorded yet; its refund or dispute is retried")]
    NotRecordedYet {
        /// The order.
        order_id: OrderId,
    },
    /// The order is committed but a side effect failed; a retry re-runs it.
    #[error("order {order_id} is committed but a side effect failed: {source}")]
    Effect {
        /// The order.
        order_id: OrderId,
        /// The cause.
        #[source]
        source: EffectError,
    },
}

impl HandleError {
    /// Whether retrying the same event later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Malformed(_) | Self::BadLineItem { .. } => false,
            Self::Store { source, .. } => source.is_retryable(),
            Self::Payments { source, .. } => source.is_retryable(),
            Self::Contention { .. } | Self::Effect { .. } | Self::NotRecordedYet { .. } => true,
        }
    }
}

impl<Store: InventoryStore, Publisher: StockPublisher, Stripe: Payments, Time: Clock>
    Services<Store, Publisher, Stripe, Time>
{
    /// Builds the use case from its ports.
    pub fn new(
        store: Store,
        publisher: Publisher,
        payments: Stripe,
        clock: Time,
        config: InventoryConfig,
    ) -> Self {
        Self {
            store,
            publisher,
            payments,
            clock,
            config,
            events: Arc::new(crate::ports::NoMerchantEvents),
            after_commit: None,
            after_take: None,
        }
    }

    /// Publishes the merchant's events (`stockbridge.order_refunded`) with `events`.
    #[must_use]
    pub fn with_merchant_events(
        mut self,
        events: impl crate::ports::MerchantEvents + 'static,
    ) -> Self {
        self.events = Arc::new(events);
        self
    }

    /// Installs a hook called after each commit and before the effects.
    #[must_use]
    pub fn with_after_commit_hook(mut self, hook: AfterCommitHook) -> Self {
        self.after_commit = Some(hook);
        self
    }

    /// Installs a hook called after each take and before its record.
    #[must_use]
    pub fn with_after_take_hook(mut self, hook: AfterCommitHook) -> Self {
        self.after_take = Some(hook);
        self
    }

    /// The store port (for the CLI and tests).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The clock port (for tests that move time).
    pub fn clock(&self) -> &Time {
        &self.clock
    }

    /// Handles one EventBridge envelope.
    ///
    /// # Errors
    /// [`HandleError`]; see [`HandleError::is_retryable`].
    pub async fn handle(&self, raw: &Value) -> Result<Handled, HandleError> {
        self.handle_decoded(decode::decode(raw, &self.config.filter)?)
            .await
    }

    /// Handles a Stripe event read directly from Stripe (`/v1/events`, by the reconciler):
    /// the same decisions as [`Self::handle`], without the EventBridge envelope.
    ///
    /// # Errors
    /// [`HandleError`]; see [`HandleError::is_retryable`].
    pub async fn handle_stripe_event(&self, event: &Value) -> Result<Handled, HandleError> {
        self.handle_decoded(decode::decode_event(event, "event", &self.config.filter)?)
            .await
    }

    /// Handles a Stripe event listed from `/v1/events` by the replay. An event whose order
    /// already took it costs one read of the order record: no Stripe call and no effect re-run
    /// (its delivery ran them; the reconciler's checks repair what a crash left undone). Anything
    /// else is handled as [`Self::handle`] handles it.
    ///
    /// # Errors
    /// [`HandleError`]; see [`HandleError::is_retryable`].
    pub async fn replay_stripe_event(&self, event: &Value) -> Result<Handled, HandleError> {
        let decoded = decode::decode_event(event, "event", &self.config.filter)?;
        if let Some(order) = self.taken_by(&decoded).await? {
            return Ok(Handled::Applied {
                order_id: order.order_id,
                outcome: Outcome::AlreadyApplied(order.status),
            });
        }
        self.handle_decoded(decoded).await
    }

    /// Whether the order of a Stripe event (from `/v1/events`) already took it.
    ///
    /// # Errors
    /// [`HandleError`] when it cannot be decoded or the order cannot be read.
    pub async fn order_took(&self, event: &Value) -> Result<bool, HandleError> {
        let decoded = decode::decode_event(event, "event", &self.config.filter)?;
        Ok(self.taken_by(&decoded).await?.is_some())
    }

    /// The order that already took a checkout event, if any.
    async fn taken_by(&self, decoded: &Decoded) -> Result<Option<OrderRecord>, HandleError> {
        let Decoded::Checkout(c) = decoded else {
            return Ok(None);
        };
        let order_id = &c.session.id;
        let existing =
            self.store
                .load_order(order_id)
                .await
                .map_err(|source| HandleError::Store {
                    order_id: order_id.clone(),
                    source,
                })?;
        Ok(existing.filter(|order| {
            c.kind == CheckoutKind::Completed || order.payment != PaymentState::Awaiting
        }))
    }

    /// Applies a paid Checkout Session found without any event (by the reconciler), given as
    /// the `checkout.session.completed` event it should have had, `created` = the session's
    /// opening. That is only a lower bound on when it was paid, so a session opened before an
    /// item's management boundary is left alone ([`Outcome::PaidTimeUnknown`], nothing written):
    /// its real event, which carries the time, decides if it ever comes.
    ///
    /// # Errors
    /// [`HandleError`]; see [`HandleError::is_retryable`].
    pub async fn apply_session_without_event(&self, event: &Value) -> Result<Handled, HandleError> {
        let decoded = match decode::decode_event(event, "event", &self.config.filter)? {
            Decoded::Checkout(mut c) => {
                // Stripe gives whole seconds; nobody pays through Checkout within the second the
                // session opened, so the end of that second is still a lower bound.
                c.paid_at = stockbridge_domain::PaidAt::NotBefore(stockbridge_domain::Timestamp(
                    c.created.saturating_mul(1000).saturating_add(999),
                ));
                Decoded::Checkout(c)
            }
            other => other,
        };
        self.handle_decoded(decoded).await
    }

    pub(crate) async fn handle_decoded(&self, decoded: Decoded) -> Result<Handled, HandleError> {
        match decoded {
            Decoded::Refused { event_id, refusal } => {
                warn!(stripe_event_id = event_id.as_deref().unwrap_or("?"), %refusal, "event refused: no effect, no retry");
                Ok(Handled::Refused)
            }
            Decoded::Ignored {
                event_id,
                event_type,
            } => {
                debug!(stripe_event_id = %event_id, event_type, "event type not handled: ignored");
                Ok(Handled::Ignored)
            }
            Decoded::Checkout(event) => {
                let order_id = event.session.id.clone();
                let outcome = self.apply(&event).await?;
                Ok(Handled::Applied { order_id, outcome })
            }
            Decoded::Intent(event) => {
                let order_id = event.hold_id.clone();
                let outcome = self.apply_intent(&event).await?;
                Ok(Handled::Applied { order_id, outcome })
            }
            Decoded::AfterSale(event) => Ok(match self.apply_after_sale(&event).await? {
                Some((order_id, outcome)) => Handled::Applied { order_id, outcome },
                None => Handled::Ignored,
            }),
        }
    }

    async fn apply(&self, event: &CheckoutEvent) -> Result<Outcome, HandleError> {
        let order_id = &event.session.id;
        let store_id = self.store_of(&event.session).await?;
        let store_err = |source| HandleError::Store {
            order_id: order_id.clone(),
            source,
        };
        // Listed once per event, kept across conflict retries.
        let lines: std::sync::Mutex<Option<Listed>> = std::sync::Mutex::new(None);
        let take_lines = || lines.lock().unwrap_or_else(|e| e.into_inner()).take();
        let keep_lines = |l: Option<Listed>| {
            *lines.lock().unwrap_or_else(|e| e.into_inner()) = l;
        };
        let store_id_ref = &store_id;
        let decision = self
            .decide_and_commit(order_id, |now| async move {
                Ok(Some(match event.kind {
                    CheckoutKind::Completed => {
                        let payment = match event.session.payment_status {
                            SessionPaymentStatus::Unpaid => PaymentState::Awaiting,
                            SessionPaymentStatus::Paid
                            | SessionPaymentStatus::NoPaymentRequired => PaymentState::Paid,
                        };
                        let mut l = take_lines();
                        let d = self
                            .decide_new(event, store_id_ref, payment, &mut l, now)
                            .await;
                        keep_lines(l);
                        d?
                    }
                    CheckoutKind::AsyncPaymentSucceeded => {
                        match self.store.load_order(order_id).await.map_err(store_err)? {
                            Some(order) => {
                                let items = self.items_of(&order).await.map_err(store_err)?;
                                decide_payment_succeeded(&order, &event.event_id, &items, now)
                            }
                            // Overtook `completed`: apply it as a paid order now.
                            None => {
                                let mut l = take_lines();
                                let d = self
                                    .decide_new(
                                        event,
                                        store_id_ref,
                                        PaymentState::Paid,
                                        &mut l,
                                        now,
                                    )
                                    .await;
                                keep_lines(l);
                                d?
                            }
                        }
                    }
                    CheckoutKind::AsyncPaymentFailed => {
                        let existing = self.store.load_order(order_id).await.map_err(store_err)?;
                        let items = match &existing {
                            Some(order) => self.items_of(order).await.map_err(store_err)?,
                            None => Items::new(),
                        };
                        decide_payment_failed(
                            existing.as_ref(),
                            order_id,
                            store_id_ref,
                            &event.event_id,
                            &items,
                            now,
                        )
                    }
                }))
            })
            .await?
            .expect("every checkout event decides");
        self.log_outcome(event, &store_id, &decision);
        self.run_decision_effects(order_id, &decision).await?;
        Ok(decision.outcome)
    }

    fn log_outcome(&self, event: &CheckoutEvent, store_id: &StoreId, decision: &Decision) {
        let (event_id, order_id) = (event.event_id.as_str(), event.session.id.as_str());
        let created = match &decision.write.order {
            Some(stockbridge_domain::OrderWrite::Create(r)) => Some(r),
            _ => None,
        };
        match &decision.outcome {
            Outcome::Unmatched => {
                let products: Vec<&str> = created
                    .map(|r| r.unmatched.iter().map(|l| l.product_id.as_str()).collect())
                    .unwrap_or_default();
                error!(stripe_event_id = event_id, order_id, store_id = %store_id, ?products, "order names no catalog product: recorded as unmatched, not refunded");
            }
            Outcome::Oversold(short) => {
                warn!(stripe_event_id = event_id, order_id, store_id = %store_id, ?short, "order oversold: nothing taken, refunding if paid");
            }
            Outcome::Predates => {
                warn!(stripe_event_id = event_id, order_id, store_id = %store_id, "order paid before stockbridge managed its products' stock (their import, backfill or last stock set --recount): recorded as predates; no stock moved, nothing refunded");
            }
            Outcome::PaidTimeUnknown => {
                warn!(stripe_event_id = event_id, order_id, store_id = %store_id, "session opened before stockbridge managed its products' stock, payment time unknown: left alone");
            }
            Outcome::AlreadyApplied(status) => {
                info!(
                    stripe_event_id = event_id,
                    order_id,
                    status = status.as_str(),
                    "already applied: re-running side effects"
                );
            }
            outcome => {
                info!(stripe_event_id = event_id, order_id, store_id = %store_id, ?outcome, "order applied")
            }
        }
        if let Some(r) = created.filter(|r| !r.predating.is_empty() && !r.lines.is_empty()) {
            let products: Vec<&str> = r.predating.iter().map(|l| l.product_id.as_str()).collect();
            warn!(stripe_event_id = event_id, order_id, store_id = %store_id, ?products, "order has lines paid before stockbridge managed their stock: those lines moved nothing");
        }
        if created.is_some_and(|r| {
            r.status == stockbridge_domain::OrderStatus::Oversold
                && r.payment == PaymentState::Paid
                && r.refund_amount == Some(0)
        }) {
            error!(stripe_event_id = event_id, order_id, store_id = %store_id, "short order with other lines, and a line of unknown amount: nothing refunded automatically; refund the undelivered lines by hand");
        }
        if let Some(r) = created.filter(|r| !r.unmatched.is_empty() && !r.lines.is_empty()) {
            let products: Vec<&str> = r.unmatched.iter().map(|l| l.product_id.as_str()).collect();
            error!(stripe_event_id = event_id, order_id, store_id = %store_id, ?products, "order has lines for products not in the catalog: those lines were ignored");
        }
    }
}

//! The checkout API with reservations: `POST /checkout` holds stock before payment and creates
//! a PaymentIntent with manual capture; the PaymentIntent's events make the hold a sale
//! (captured) or release it; the sweeper releases expired holds. See docs/checkout.md for the
//! sequence and the states.
//!
//! # Layout
//! - this file: the `POST /checkout` use case;
//! - [`request`]: what a request may contain, the hold id, what Stripe would refuse;
//! - `intents`: the PaymentIntent's events and the sweeper.

use std::time::{Duration, Instant};

use serde_json::Value;
use stockbridge_domain::{
    CheckoutFacts, HoldDecision, HoldTerms, OrderId, OrderRecord, OrderStatus, OrderWrite,
    PaymentState, ProductId, Shortfall, StripeEventId, Timestamp, decide_hold,
    decide_hold_released,
};
use tracing::{error, info, warn};

use crate::effects::run_effects;
use crate::orders::Services;
use crate::ports::{
    CatalogStore, Clock, InventoryStore, NewPaymentIntent, Payments, PaymentsError, StockPublisher,
    StoreError, Window,
};
use crate::retry::backoff;

pub mod caps;
mod settle;

pub use crate::decode::checkout_request::*;
pub use settle::{SWEEP_PAGE, SweepReport};

/// A PaymentIntent's client secret: shown to the buyer's browser, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(pub String);

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(..)")
    }
}

/// What `POST /checkout` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReservationReply {
    /// 200: the stock is held and the PaymentIntent created.
    Held {
        /// For Stripe Elements / `confirmPayment`.
        client_secret: ClientSecret,
        /// The hold.
        hold_id: OrderId,
        /// When the hold lapses.
        expires_at: Timestamp,
        /// Total in minor units, from the catalog's prices when the stock was held.
        amount: u64,
        /// Currency.
        currency: String,
    },
    /// 409: not enough stock; nothing held.
    Short(Vec<Shortfall>),
    /// 410: this key's hold is settled (released, paid or cancelled): start a new checkout
    /// with a new key.
    Released(OrderId),
    /// 400.
    Invalid(RequestError),
    /// 402: Stripe refused to create the payment for this cart (its own validation); the hold
    /// was released at once, nothing is held. The reason is in the log, not in the answer.
    Refused(OrderId),
    /// 429: a cap on this e-mail or client address is reached ([`caps`]); nothing is held.
    Limited {
        /// Seconds until the window that refused ends (`Retry-After`).
        retry_after: u32,
        /// Which cap, in words a buyer can act on.
        reason: &'static str,
    },
}

/// Why a checkout failed (5xx: retry with the same Idempotency-Key).
#[derive(Debug, thiserror::Error)]
pub enum ReservationError {
    /// The store failed.
    #[error("the store: {0}")]
    Store(#[from] StoreError),
    /// Stripe failed (retryable: a throttle or an outage).
    #[error("Stripe: {0}")]
    Stripe(#[from] PaymentsError),
    /// The stock kept changing under us until the time for this request ran out.
    #[error("the stock kept changing; retry with the same Idempotency-Key")]
    Contention,
}

/// Time kept beyond the hold's deadline for the Stripe call and the answer.
const STRIPE_RESERVE: Duration = Duration::from_secs(5);

/// What one request prices to, from the catalog (never from the client).
struct Priced {
    amount: u64,
    currency: String,
}

impl<Store: InventoryStore + CatalogStore, Publisher: StockPublisher, Stripe: Payments, Time: Clock>
    Services<Store, Publisher, Stripe, Time>
{
    /// `POST /checkout`: holds every line (all or none), then creates the PaymentIntent for what
    /// the hold recorded. Conflicts are retried while `time` allows (the Lambda passes what is
    /// left of its timeout, less the Stripe call), so a busy item answers 503 with CORS headers
    /// instead of timing out.
    ///
    /// # Errors
    /// [`ReservationError`]: nothing or only the hold was written; a retry with the same
    /// Idempotency-Key continues.
    pub async fn reserve(
        &self,
        request: &ReservationRequest,
        key: &str,
        limits: &HoldLimits,
        time: Duration,
    ) -> Result<ReservationReply, ReservationError> {
        let deadline = Instant::now() + time;
        let hold = hold_id(&request.store_id, key);
        // A retry of a hold already made answers from what the hold recorded: it is neither
        // priced again (a product repriced or withdrawn meanwhile must not strand the hold) nor
        // counted against the caps.
        let existing = self.store.load_order(&hold).await?;
        let recorded_price = existing
            .as_ref()
            .and_then(|o| o.hold.as_ref())
            .and_then(|t| {
                Some(Priced {
                    amount: t.amount?,
                    currency: t.currency.clone()?,
                })
            });
        let priced = match recorded_price {
            Some(p) => p,
            None => match self.price(request).await? {
                Ok(p) => p,
                Err(e) => return Ok(ReservationReply::Invalid(e)),
            },
        };
        let mut taken = Vec::new();
        if existing.is_none() {
            match self.take_caps(request, limits).await? {
                Ok(windows) => taken = windows,
                Err(limited) => return Ok(limited),
            }
        }
        let allowance = taken
            .iter()
            .find(|(w, _)| w.key.starts_with("units:"))
            .map(|(w, n)| stockbridge_domain::Allowance {
                key: w.key.clone(),
                start: w.start,
                seconds: w.seconds,
                units: *n,
            });
        let record = match self
            .hold(request, &hold, &priced, limits, allowance, deadline)
            .await
        {
            Ok(Ok((r, created))) => {
                // Made meanwhile by another request with the same key (a double click): this
                // one holds nothing of its own.
                if !created {
                    self.give_back(&taken).await;
                }
                r
            }
            // Nothing was held: the slots this request took go back.
            Ok(Err(reply)) => {
                self.give_back(&taken).await;
                return Ok(reply);
            }
            Err(e) => {
                self.give_back(&taken).await;
                return Err(e);
            }
        };
        self.pay_for_hold(request, hold, &record, priced, deadline)
            .await
    }

    /// The hold's PaymentIntent, for what the hold recorded: a retry sends Stripe identical
    /// parameters even if a price changed meanwhile (else: an idempotency error, and the stock
    /// held for nothing).
    async fn pay_for_hold(
        &self,
        request: &ReservationRequest,
        hold: OrderId,
        record: &OrderRecord,
        priced: Priced,
        deadline: Instant,
    ) -> Result<ReservationReply, ReservationError> {
        let terms = record.hold.clone().unwrap_or_default();
        let amount = terms.amount.unwrap_or(priced.amount);
        let currency = terms.currency.clone().unwrap_or(priced.currency);
        let new_intent = NewPaymentIntent {
            amount,
            currency: currency.clone(),
            hold_id: hold.clone(),
            store_id: request.store_id.clone(),
            receipt_email: terms
                .email
                .clone()
                .or_else(|| request.customer_email.clone()),
            idempotency_key: format!("stockbridge-checkout-{hold}"),
        };
        let create = self.payments.create_payment_intent(&new_intent);
        let left = deadline.saturating_duration_since(Instant::now()) + STRIPE_RESERVE;
        let created = tokio::time::timeout(left, create)
            .await
            .unwrap_or_else(|_| {
                Err(PaymentsError::Unavailable {
                    operation: "create payment intent",
                    message: "no time left in this request".into(),
                })
            });
        match created {
            Ok(intent) => Ok(ReservationReply::Held {
                client_secret: ClientSecret(intent.client_secret),
                hold_id: hold,
                expires_at: terms.expires_at,
                amount,
                currency,
            }),
            // Stripe's validation refused this very request: a retry would be refused the same
            // way, so the stock goes back now rather than at expiry. Anything else (a throttle,
            // an outage, a concurrent request with the same key, a key problem) keeps the hold
            // for a retry with the same key.
            Err(e @ PaymentsError::Refused { .. }) => {
                error!(hold = %hold, error = %e, "Stripe refused the hold's PaymentIntent: releasing the hold");
                self.release_refused(&hold, deadline + STRIPE_RESERVE)
                    .await?;
                Ok(ReservationReply::Refused(hold))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The request's total from the catalog's prices, or what is wrong with it.
    async fn price(
        &self,
        request: &ReservationRequest,
    ) -> Result<Result<Priced, RequestError>, ReservationError> {
        let products: Vec<ProductId> = request.lines.iter().map(|l| l.product_id.clone()).collect();
        let entries = self.store.entries(&products).await?;
        let mut amount: u64 = 0;
        let mut currency: Option<String> = None;
        for (i, line) in request.lines.iter().enumerate() {
            let field = format!("items[{i}].product_id");
            let Some(entry) = entries
                .get(&line.product_id)
                .filter(|e| e.details.active && e.details.stores.contains(&request.store_id))
            else {
                let message = format!(
                    "{} is not for sale in store {}",
                    line.product_id, request.store_id
                );
                return Ok(Err(bad(field, message)));
            };
            let price = &entry.details.price;
            if currency.get_or_insert_with(|| price.currency.clone()) != &price.currency {
                let message = "its currency differs from the other lines': check out separately";
                return Ok(Err(bad(field, message)));
            }
            amount = price
                .amount
                .saturating_mul(line.quantity.get())
                .saturating_add(amount);
        }
        let currency = currency.unwrap_or_else(|| "usd".into());
        if let Some(problem) = amount_problem(amount, &currency) {
            return Ok(Err(bad("items", problem)));
        }
        Ok(Ok(Priced { amount, currency }))
    }

    /// Finds this key's pending hold, or holds the stock (one transaction, retried on conflicts
    /// until `deadline`); with whether this call wrote it. `Err(reply)`: answer that instead.
    async fn hold(
        &self,
        request: &ReservationRequest,
        hold: &OrderId,
        priced: &Priced,
        limits: &HoldLimits,
        allowance: Option<stockbridge_domain::Allowance>,
        deadline: Instant,
    ) -> Result<Result<(Box<OrderRecord>, bool), ReservationReply>, ReservationError> {
        let products: Vec<ProductId> = request.lines.iter().map(|l| l.product_id.clone()).collect();
        let facts = CheckoutFacts {
            order_id: hold.clone(),
            store_id: request.store_id.clone(),
            lines: request.lines.clone(),
            payment: PaymentState::Awaiting,
            payment_intent: None,
            payment_link: None,
            event_id: StripeEventId::parse(format!("checkout-api-{hold}")).expect("valid id"),
            // A hold is made by stockbridge itself, now: never history.
            paid_at: stockbridge_domain::PaidAt::At(self.clock.now()),
            // A hold that cannot be filled is cancelled, never refunded.
            amounts: std::collections::BTreeMap::new(),
        };
        let mut attempt = 0;
        loop {
            let now = self.clock.now();
            let terms = HoldTerms {
                expires_at: Timestamp(now.0 + i64::from(limits.hold_seconds) * 1000),
                amount: Some(priced.amount),
                currency: Some(priced.currency.clone()),
                email: request.customer_email.clone(),
                client: request.client.clone(),
                allowance: allowance.clone(),
            };
            // A hold writes its items: a spread product is collected first.
            let (existing, items) = crate::shards::load_collected(
                &self.store,
                hold,
                &request.store_id,
                &products,
                self.clock.now(),
            )
            .await?;
            if let Some(missing) = products.iter().position(|p| !items.contains_key(p)) {
                let message = format!("no stock record in store {}", request.store_id);
                return Ok(Err(ReservationReply::Invalid(bad(
                    format!("items[{missing}].product_id"),
                    message,
                ))));
            }
            let share = limits.hold_share_percent;
            let decision = match decide_hold(existing.as_ref(), &facts, &items, terms, share, now) {
                HoldDecision::Existing(order) => {
                    return Ok(existing_hold(order, request).map(|o| (o, false)));
                }
                HoldDecision::Short(s) => return Ok(Err(ReservationReply::Short(s))),
                HoldDecision::Reserve(decision) => decision,
            };
            match self.store.commit(&decision.write).await {
                Ok(()) => {
                    let ports = (&self.store, &self.publisher, &self.payments);
                    run_effects(ports, &*self.events, &decision.effects, now)
                        .await
                        .unwrap_or_else(|e| warn!(hold = %hold, error = %e, "a side effect of the hold failed; the next change or the reconciler repeats it"));
                    let Some(OrderWrite::Create(r)) = decision.write.order else {
                        unreachable!("a hold creates its record")
                    };
                    info!(hold = %hold, store_id = %request.store_id, lines = r.lines.len(), "stock held");
                    return Ok(Ok((Box::new(r), true)));
                }
                Err(StoreError::Conflict) if self.may_retry(attempt, deadline) => {
                    attempt += 1;
                    backoff(attempt).await;
                }
                Err(StoreError::Conflict) => return Err(ReservationError::Contention),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The caps on who asks ([`caps`]): failed authorisations in the hour first (counted, not
    /// taken), then one more hold for the e-mail and for the client address. `Ok`: the slots
    /// taken (given back if no hold is written); `Err`: refused, nothing taken.
    async fn take_caps(
        &self,
        request: &ReservationRequest,
        limits: &HoldLimits,
    ) -> Result<Result<Vec<(Window, u32)>, ReservationReply>, ReservationError> {
        let now = self.clock.now();
        if limits.units_per_email > 0 && request.customer_email.is_none() {
            let message = "required: this shop limits the units each buyer may order";
            return Ok(Err(ReservationReply::Invalid(bad(
                "customer_email",
                message,
            ))));
        }
        let email = request.customer_email.as_deref().map(caps::email_key);
        let failures = [
            (email.as_ref(), limits.failures_per_hour),
            (request.client.as_ref(), limits.failures_per_client_hour),
        ];
        for (key, cap) in failures {
            let Some(key) = key else { continue };
            let w = Window::containing(format!("fails:{key}"), now, caps::FAILURE_WINDOW_SECONDS);
            if self.store.count(&w).await? >= cap {
                info!(key = %w.key, "checkout refused: too many failed payments");
                let reason = "too many failed payments from here: try again later";
                return Ok(Err(limited(&w, now, reason)));
            }
        }
        let takes = [
            (
                email.as_ref(),
                limits.holds_per_email,
                "too many checkouts for this e-mail address: finish or let one lapse first",
            ),
            (
                request.client.as_ref(),
                limits.holds_per_client,
                "too many checkouts from this network: try again later",
            ),
        ];
        let mut taken = Vec::new();
        let mut takes: Vec<(Window, u32, u32, &str)> = takes
            .into_iter()
            .filter_map(|(key, cap, reason)| {
                let w = Window::containing(format!("holds:{}", key?), now, limits.hold_seconds);
                Some((w, 1, cap, reason))
            })
            .collect();
        if let (Some(key), limit @ 1..) = (email.as_ref(), limits.units_per_email) {
            let units: u64 = request.lines.iter().map(|l| l.quantity.get()).sum();
            let w = units_window(key, now, limits);
            let reason = "this e-mail address has reached the shop's limit per buyer";
            takes.push((w, u32::try_from(units).unwrap_or(u32::MAX), limit, reason));
        }
        for (w, n, cap, reason) in takes {
            let took = match self.store.take(&w, n, cap).await {
                Ok(took) => took,
                Err(e) => {
                    self.give_back(&taken).await;
                    return Err(e.into());
                }
            };
            if !took {
                info!(key = %w.key, cap, "checkout refused: cap reached");
                self.give_back(&taken).await;
                return Ok(Err(limited(&w, now, reason)));
            }
            taken.push((w, n));
        }
        Ok(Ok(taken))
    }

    /// Whether another conflict retry fits: under the attempt limit, and the longest backoff
    /// still ends before `deadline`.
    fn may_retry(&self, attempt: u32, deadline: Instant) -> bool {
        attempt + 1 < self.config.max_attempts
            && Instant::now() + Duration::from_millis(400) < deadline
    }

    /// Gives back cap slots taken by a request that held nothing (best effort).
    async fn give_back(&self, taken: &[(Window, u32)]) {
        for (w, n) in taken {
            if let Err(e) = self.store.give_back(w, *n).await {
                warn!(key = %w.key, error = %e, "giving back a cap slot failed");
            }
        }
    }

    /// Releases a hold Stripe refused to make a payment for (its stock back now); the sweeper
    /// does it at expiry if this runs out of time.
    async fn release_refused(
        &self,
        hold: &OrderId,
        deadline: Instant,
    ) -> Result<(), ReservationError> {
        let mut attempt = 0;
        loop {
            let Some(order) = self.store.load_order(hold).await? else {
                return Ok(());
            };
            let products: Vec<ProductId> = order.products().cloned().collect();
            let now = self.clock.now();
            let (order, items) =
                crate::shards::load_collected(&self.store, hold, &order.store_id, &products, now)
                    .await?;
            let Some(decision) =
                order.and_then(|o| decide_hold_released(&o, &items, "checkout", now))
            else {
                return Ok(());
            };
            match self.store.commit(&decision.write).await {
                Ok(()) => {
                    let ports = (&self.store, &self.publisher, &self.payments);
                    run_effects(ports, &*self.events, &decision.effects, now)
                        .await
                        .unwrap_or_else(|e| warn!(hold = %hold, error = %e, "a side effect of the release failed; the next change or the reconciler repeats it"));
                    return Ok(());
                }
                Err(StoreError::Conflict) if self.may_retry(attempt, deadline) => {
                    attempt += 1;
                    backoff(attempt).await;
                }
                // The sweeper releases it at expiry.
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The window of an e-mail's purchase limit that contains `at`.
pub(crate) fn units_window(email_key: &str, at: Timestamp, limits: &HoldLimits) -> Window {
    Window::containing(format!("units:{email_key}"), at, limits.email_limit_seconds)
}

fn limited(w: &Window, now: Timestamp, reason: &'static str) -> ReservationReply {
    ReservationReply::Limited {
        retry_after: w.retry_after(now),
        reason,
    }
}

/// A retry's hold: the same cart, still pending — else what to answer.
fn existing_hold(
    order: Box<OrderRecord>,
    request: &ReservationRequest,
) -> Result<Box<OrderRecord>, ReservationReply> {
    let email = order.hold.as_ref().and_then(|h| h.email.clone());
    let same_email =
        order.hold.as_ref().is_none_or(|h| h.amount.is_none()) || email == request.customer_email;
    if order.store_id != request.store_id || order.lines != request.lines || !same_email {
        return Err(ReservationReply::Invalid(bad(
            "Idempotency-Key",
            "already used for a different checkout: use a new key per checkout",
        )));
    }
    // Settled one way or another (released, paid, cancelled): a new checkout needs a new key;
    // never a second PaymentIntent for this hold.
    if order.status != OrderStatus::Pending {
        return Err(ReservationReply::Released(order.order_id.clone()));
    }
    Ok(order)
}

/// The JSON body of a 409: what is available for each short line.
pub fn shortfall_body(shortfalls: &[Shortfall]) -> Value {
    let available: Vec<Value> = shortfalls
        .iter()
        .map(|s| {
            serde_json::json!({
                "product_id": s.product_id.as_str(),
                "requested": s.requested,
                "available": s.available,
            })
        })
        .collect();
    serde_json::json!({
        "error": "insufficient_stock",
        "message": "not enough stock for every line: nothing was held",
        "available": available,
    })
}

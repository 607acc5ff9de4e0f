//! The checkout API with reservations: `POST /checkout` holds stock before payment and creates
//! a PaymentIntent with manual capture; the PaymentIntent's events make the hold a sale
//! (captured) or release it; the sweeper releases expired holds. See the README's *Checkout with
//! reservations* for the sequence.

use std::future::Future;

use serde::Deserialize;
use serde_json::Value;
use stockbridge_domain::{
    CheckoutFacts, Decision, HoldDecision, Items, OrderId, OrderLine, OrderRecord, PaymentState,
    ProductId, Quantity, Shortfall, StoreId, StripeEventId, Timestamp, decide_authorized,
    decide_hold, decide_hold_expired, decide_payment_failed, merge_lines,
};
use tracing::{info, warn};

use crate::effects::run_effects;
use crate::events::{IntentEvent, IntentKind};
use crate::inventory::{HandleError, Inventory};
use crate::ports::{
    CatalogReader, CatalogStore, Clock, InventoryStore, NewPaymentIntent, Payments, PaymentsError,
    StockPublisher, StoreError,
};
use crate::retry::backoff;

/// Limits of the checkout API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckoutLimits {
    /// Units of one product per request (`CHECKOUT_MAX_QUANTITY`, default 10).
    pub max_quantity: u64,
    /// Lines per request (`CHECKOUT_MAX_LINES`, default 20).
    pub max_lines: usize,
    /// How long a hold lasts (`CHECKOUT_HOLD_SECONDS`, default 900).
    pub hold_seconds: u32,
}

impl Default for CheckoutLimits {
    fn default() -> Self {
        Self {
            max_quantity: 10,
            max_lines: 20,
            hold_seconds: 900,
        }
    }
}

/// A checkout request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// The store.
    pub store_id: StoreId,
    /// Lines, merged per product.
    pub lines: Vec<OrderLine>,
    /// For the receipt.
    pub customer_email: Option<String>,
}

/// A refused request: 400 with the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{field}: {message}")]
pub struct RequestError {
    /// The field (`items[2].quantity`, `Idempotency-Key`, ...).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> RequestError {
    RequestError {
        field: field.into(),
        message: message.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    store_id: String,
    items: Vec<RawLine>,
    #[serde(default)]
    customer_email: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    product_id: String,
    quantity: i64,
}

/// Parses and validates a `POST /checkout` body.
///
/// # Errors
/// [`RequestError`] naming the field.
pub fn parse_request(
    body: &[u8],
    limits: &CheckoutLimits,
) -> Result<CheckoutRequest, RequestError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad("body", format!("not JSON: {e}")))?;
    let raw: RawRequest = serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // A missing field is reported at its parent: name the field itself.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
            .map(str::to_owned);
        let field = match (path.as_str(), missing) {
            (".", Some(f)) => f,
            (".", None) => "body".to_owned(),
            (p, Some(f)) => format!("{p}.{f}"),
            (p, None) => p.to_owned(),
        };
        bad(field, message)
    })?;
    let store_id = StoreId::parse(raw.store_id).map_err(|e| bad("store_id", e.to_string()))?;
    if raw.items.is_empty() {
        return Err(bad("items", "at least one line is required"));
    }
    if raw.items.len() > limits.max_lines {
        return Err(bad(
            "items",
            format!("at most {} lines per checkout", limits.max_lines),
        ));
    }
    let mut lines = Vec::with_capacity(raw.items.len());
    for (i, l) in raw.items.into_iter().enumerate() {
        let product_id = ProductId::parse(l.product_id)
            .map_err(|e| bad(format!("items[{i}].product_id"), e.to_string()))?;
        if l.quantity <= 0 || l.quantity as u64 > limits.max_quantity {
            return Err(bad(
                format!("items[{i}].quantity"),
                format!("must be between 1 and {}", limits.max_quantity),
            ));
        }
        let quantity = Quantity::new(l.quantity as u64)
            .map_err(|e| bad(format!("items[{i}].quantity"), e.to_string()))?;
        lines.push(OrderLine {
            product_id,
            quantity,
        });
    }
    let lines = merge_lines(lines).map_err(|e| bad("items", e.to_string()))?;
    if lines.iter().any(|l| l.quantity.get() > limits.max_quantity) {
        return Err(bad(
            "items",
            format!(
                "at most {} units of one product per checkout",
                limits.max_quantity
            ),
        ));
    }
    let customer_email = match raw.customer_email.map(|e| e.trim().to_owned()) {
        None => None,
        Some(e) if e.is_empty() => None,
        Some(e) if e.len() > 254 || !e.contains('@') || e.contains(char::is_whitespace) => {
            return Err(bad("customer_email", "not an e-mail address"));
        }
        Some(e) => Some(e),
    };
    Ok(CheckoutRequest {
        store_id,
        lines,
        customer_email,
    })
}

/// Validates the `Idempotency-Key` header (required).
///
/// # Errors
/// [`RequestError`] on `Idempotency-Key`.
pub fn idempotency_key(header: Option<&str>) -> Result<String, RequestError> {
    match header.map(str::trim) {
        None | Some("") => Err(bad(
            "Idempotency-Key",
            "the header is required (a random UUID per checkout attempt; send the same one when retrying)",
        )),
        Some(k) if k.len() > 255 || !k.bytes().all(|b| b.is_ascii_graphic()) => Err(bad(
            "Idempotency-Key",
            "at most 255 printable ASCII characters",
        )),
        Some(k) => Ok(k.to_owned()),
    }
}

/// The hold id for a request: derived from the store and the client's Idempotency-Key, so a
/// retry finds the same hold (and, through the hold's key, the same PaymentIntent).
pub fn hold_id(store: &StoreId, key: &str) -> OrderId {
    let fnv = |seed: u64| {
        format!("{store}\n{key}").bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    OrderId::parse(format!(
        "hold_{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x6c62_272e_07bb_0142)
    ))
    .expect("a valid id")
}

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
pub enum CheckoutReply {
    /// 200: the stock is held and the PaymentIntent created.
    Held {
        /// For Stripe Elements / `confirmPayment`.
        client_secret: ClientSecret,
        /// The hold.
        hold_id: OrderId,
        /// When the hold lapses.
        expires_at: Timestamp,
        /// Total in minor units, from the catalog's prices.
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
}

/// Why a checkout failed (5xx: retry with the same Idempotency-Key).
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// The store failed.
    #[error("the store: {0}")]
    Store(#[from] StoreError),
    /// Stripe failed.
    #[error("Stripe: {0}")]
    Stripe(#[from] PaymentsError),
    /// The stock kept changing under us.
    #[error("the stock kept changing; retry with the same Idempotency-Key")]
    Contention,
}

impl<S, P, Y, C> Inventory<S, P, Y, C>
where
    S: InventoryStore + CatalogStore,
    P: StockPublisher,
    Y: Payments,
    C: Clock,
{
    /// `POST /checkout`: holds every line (all or none) and creates the PaymentIntent.
    ///
    /// # Errors
    /// [`CheckoutError`]: nothing or only the hold was written; a retry with the same
    /// Idempotency-Key continues.
    pub async fn checkout(
        &self,
        request: &CheckoutRequest,
        key: &str,
        limits: &CheckoutLimits,
    ) -> Result<CheckoutReply, CheckoutError> {
        let hold = hold_id(&request.store_id, key);
        // Prices come from the catalog, never from the client.
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
                return Ok(CheckoutReply::Invalid(bad(
                    field,
                    format!(
                        "{} is not for sale in store {}",
                        line.product_id, request.store_id
                    ),
                )));
            };
            let price = &entry.details.price;
            if currency.get_or_insert_with(|| price.currency.clone()) != &price.currency {
                return Ok(CheckoutReply::Invalid(bad(
                    field,
                    "its currency differs from the other lines': check out separately",
                )));
            }
            amount = price
                .amount
                .checked_mul(line.quantity.get())
                .and_then(|a| a.checked_add(amount))
                .ok_or_else(|| {
                    CheckoutError::Stripe(PaymentsError::Invalid {
                        operation: "checkout",
                        message: "the total overflows".into(),
                    })
                })?;
        }
        let currency = currency.unwrap_or_else(|| "usd".into());
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
        let record = loop {
            let now = self.clock.now();
            let expires_at = Timestamp(now.0 + i64::from(limits.hold_seconds) * 1000);
            let (existing, items) = self.store.load(&hold, &request.store_id, &products).await?;
            if items.len() < products.len() {
                let missing = products
                    .iter()
                    .position(|p| !items.contains_key(p))
                    .unwrap_or(0);
                return Ok(CheckoutReply::Invalid(bad(
                    format!("items[{missing}].product_id"),
                    format!("no stock record in store {}", request.store_id),
                )));
            }
            match decide_hold(existing.as_ref(), &facts, &items, expires_at, now) {
                HoldDecision::Existing(order) => {
                    if order.store_id != request.store_id || order.lines != request.lines {
                        return Ok(CheckoutReply::Invalid(bad(
                            "Idempotency-Key",
                            "already used for a different checkout: use a new key per checkout",
                        )));
                    }
                    // Settled one way or another (released, paid, cancelled): a new checkout
                    // needs a new key; never a second PaymentIntent for this hold.
                    if order.status != stockbridge_domain::OrderStatus::Pending {
                        return Ok(CheckoutReply::Released(order.order_id.clone()));
                    }
                    break order;
                }
                HoldDecision::Short(s) => return Ok(CheckoutReply::Short(s)),
                HoldDecision::Reserve(decision) => match self.store.commit(&decision.write).await {
                    Ok(()) => {
                        run_effects(&self.store, &self.publisher, &self.payments, &decision.effects, now)
                            .await
                            .unwrap_or_else(|e| warn!(hold = %hold, error = %e, "a side effect of the hold failed; the next change or the reconciler repeats it"));
                        let Some(stockbridge_domain::OrderWrite::Create(r)) = decision.write.order
                        else {
                            unreachable!("a hold creates its record")
                        };
                        info!(hold = %hold, store_id = %request.store_id, lines = r.lines.len(), "stock held");
                        break Box::new(r);
                    }
                    Err(StoreError::Conflict) if attempt + 1 < self.config.max_attempts => {
                        attempt += 1;
                        backoff(attempt).await;
                    }
                    Err(StoreError::Conflict) => return Err(CheckoutError::Contention),
                    Err(e) => return Err(e.into()),
                },
            }
        };
        let intent = self
            .payments
            .create_payment_intent(&NewPaymentIntent {
                amount,
                currency: currency.clone(),
                hold_id: hold.clone(),
                store_id: request.store_id.clone(),
                receipt_email: request.customer_email.clone(),
                idempotency_key: format!("stockbridge-checkout-{hold}"),
            })
            .await?;
        Ok(CheckoutReply::Held {
            client_secret: ClientSecret(intent.client_secret),
            hold_id: hold,
            expires_at: record.hold.map_or(record.created_at, |h| h.expires_at),
            amount,
            currency,
        })
    }
}

impl<S, P, Y, C> Inventory<S, P, Y, C>
where
    S: InventoryStore,
    P: StockPublisher,
    Y: Payments,
    C: Clock,
{
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
        let (order, items) = self.store.load(hold, &order.store_id, &products).await?;
        Ok(order.map(|o| (o, items)))
    }

    /// A hold's PaymentIntent event: authorised -> sale and capture (or cancel when it cannot be
    /// filled); failed or cancelled -> the hold is released.
    pub(crate) async fn apply_intent(
        &self,
        event: &IntentEvent,
    ) -> Result<stockbridge_domain::Outcome, HandleError> {
        let decision = self
            .commit_decision(&event.hold_id, |now| async move {
                let Some((order, items)) = self.hold_and_items(&event.hold_id).await? else {
                    return Ok(None);
                };
                Ok(Some(match event.kind {
                    IntentKind::Authorized => decide_authorized(
                        &order,
                        &event.payment_intent,
                        &event.event_id,
                        &items,
                        now,
                    ),
                    IntentKind::Failed | IntentKind::Canceled => decide_payment_failed(
                        Some(&order),
                        &order.order_id,
                        &order.store_id,
                        &event.event_id,
                        &items,
                        now,
                    ),
                }))
            })
            .await?;
        match decision {
            Some(d) => {
                info!(hold = %event.hold_id, payment_intent = %event.payment_intent, kind = ?event.kind, outcome = ?d.outcome, "hold payment event applied");
                Ok(d.outcome)
            }
            None => {
                // The hold is written before the PaymentIntent exists, so this is not a race:
                // the PaymentIntent names a hold this table never had.
                warn!(hold = %event.hold_id, payment_intent = %event.payment_intent, "PaymentIntent event for an unknown hold: ignored");
                Ok(stockbridge_domain::Outcome::AlreadyApplied(
                    stockbridge_domain::OrderStatus::Failed,
                ))
            }
        }
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
}

impl<S, P, Y, C> Inventory<S, P, Y, C>
where
    S: InventoryStore + CatalogReader,
    P: StockPublisher,
    Y: Payments,
    C: Clock,
{
    /// The sweeper: releases every hold still pending after its expiry; the stock returns and is
    /// published. Each release is conditional on the hold still pending, so an authorisation
    /// racing it resolves to exactly one outcome.
    ///
    /// # Errors
    /// [`StoreError`] when the holds cannot be listed.
    pub async fn sweep_expired_holds(&self) -> Result<SweepReport, StoreError> {
        let holds = self.store.expired_holds(self.clock.now()).await?;
        let mut report = SweepReport {
            expired: holds.len(),
            ..SweepReport::default()
        };
        for hold in holds {
            let r = self
                .commit_decision(&hold.order_id, |now| {
                    let id = hold.order_id.clone();
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
                    info!(hold = %hold.order_id, "expired hold released");
                    report.released += 1;
                }
                Ok(None) => report.raced += 1,
                Err(e) => {
                    warn!(hold = %hold.order_id, error = %e, "releasing an expired hold failed: the next sweep retries");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }
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

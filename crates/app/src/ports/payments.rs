//! Stripe as the inventory and the checkout use it: line items, refunds, links, PaymentIntents.

use super::*;

/// One line of a Checkout Session as Stripe lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLine {
    /// The price's product.
    pub product_id: ProductId,
    /// Units (Stripe may omit it; absent is an error upstream).
    pub quantity: u64,
    /// What the line cost (`amount_total`: after discounts, with tax), minor units.
    pub amount_total: Option<u64>,
}

/// What a link switch found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkSwitch {
    /// The link was in the other state; this call switched it.
    Switched,
    /// The link already was in the wanted state; nothing was sent.
    Unchanged {
        /// The message it shows buyers while off (stockbridge's own says it switched it).
        inactive_message: Option<String>,
        /// Off because it reached the completed-sessions limit stockbridge set
        /// ([`stockbridge_domain::link_guard`]): Stripe's switch at stockbridge's limit, so
        /// stockbridge's own.
        at_guard_limit: bool,
    },
}

/// What setting a link's guard ([`Payments::guard_link`]) found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardOutcome {
    /// The limit (and, when asked, `active`) was set.
    Set {
        /// The limit now on the link.
        limit: u64,
        /// Whether this call also switched the link on.
        switched_on: bool,
    },
    /// The link already had that limit (and state): nothing was sent.
    Unchanged,
    /// The link has a limit stockbridge did not set (a merchant's): left as it is.
    Theirs,
}

impl LinkSwitch {
    /// True when this call changed the link.
    pub fn switched(&self) -> bool {
        matches!(self, Self::Switched)
    }

    /// A switch-off that found the link already off by someone else's hand: with another
    /// message than stockbridge's own (`ours`) and not at the limit stockbridge set. (Off with
    /// stockbridge's message: a concurrent sell-out, the reconciler or the catalog sync
    /// switched it; off at stockbridge's limit: Stripe switched it for stockbridge.)
    pub fn found_off_by_someone_else(&self, ours: &str) -> bool {
        matches!(
            self,
            Self::Unchanged {
                inactive_message,
                at_guard_limit: false,
            } if inactive_message.as_deref() != Some(ours)
        )
    }
}

/// Why a Stripe call failed.
#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    /// Stripe answered 429; retry later.
    #[error("Stripe rate limit hit on {operation}")]
    RateLimited {
        /// What we were doing.
        operation: &'static str,
        /// How long Stripe asked us to wait (`Retry-After`), if it said.
        retry_after: Option<Duration>,
    },
    /// Stripe answered 5xx or the connection failed; retry later.
    #[error("Stripe unavailable on {operation}: {message}")]
    Unavailable {
        /// What we were doing.
        operation: &'static str,
        /// Details.
        message: String,
    },
    /// Stripe does not know the object (HTTP 404).
    #[error("Stripe has no such object ({operation}): {message}")]
    NotFound {
        /// What we were doing.
        operation: &'static str,
        /// Stripe's message.
        message: String,
    },
    /// The charge was already refunded (by someone else, e.g. in the Dashboard).
    #[error("the payment was already refunded")]
    AlreadyRefunded,
    /// The PaymentIntent is not in a state that allows the call (already captured or
    /// cancelled).
    #[error("Stripe refused {operation}: the PaymentIntent is in the wrong state: {message}")]
    UnexpectedState {
        /// What we were doing.
        operation: &'static str,
        /// Stripe's message.
        message: String,
    },
    /// Stripe's validation refused this very request (HTTP 400/402, `invalid_request_error` or
    /// `card_error`): sent again, it is refused again.
    #[error("Stripe refused {operation} as invalid: {message}")]
    Refused {
        /// What we were doing.
        operation: &'static str,
        /// Stripe's message.
        message: String,
    },
    /// Stripe refused the request (4xx other than 429, not a validation refusal: a key or
    /// permission problem, an idempotency error, ...).
    #[error("Stripe refused {operation}: {message}")]
    Rejected {
        /// What we were doing.
        operation: &'static str,
        /// Stripe's message.
        message: String,
    },
    /// Stripe's answer did not contain what we need.
    #[error("Stripe's answer to {operation} is unusable: {message}")]
    Invalid {
        /// What we were doing.
        operation: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl PaymentsError {
    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Unavailable { .. })
    }
}

/// The Stripe calls the inventory needs.
pub trait Payments: Send + Sync {
    /// Every line of a Checkout Session (all pages).
    fn line_items(
        &self,
        session: &OrderId,
    ) -> impl Future<Output = Result<Vec<SessionLine>, PaymentsError>> + Send;

    /// Refunds a PaymentIntent in full with the request's idempotency key.
    fn refund(
        &self,
        request: &RefundRequest,
    ) -> impl Future<Output = Result<RefundId, PaymentsError>> + Send;

    /// Switches a Payment Link on or off (with a message shown to buyers when off), unless it
    /// already is. Its state is read first, so a switch that would change nothing is never
    /// sent, and a caller learns how it found the link (stockbridge records as its own only the
    /// links it switched off itself).
    fn set_link_active(
        &self,
        link: &PaymentLinkId,
        active: bool,
        inactive_message: Option<&str>,
    ) -> impl Future<Output = Result<LinkSwitch, PaymentsError>> + Send;

    /// Sets a link's completed-sessions limit to its count plus `sessions` (the sessions the
    /// units not held can fill, at least 1), marking it as stockbridge's; with `activate`, also
    /// switches it on in the same request (a restock of a link stockbridge switched off). A link
    /// Stripe switched off at stockbridge's own limit is switched on with the new limit either
    /// way: it is stockbridge's switch, and a link left off below its new limit would look like
    /// a person's from then on. A limit someone else set is left alone. Read first, so a limit
    /// already right is never sent again.
    fn guard_link(
        &self,
        link: &PaymentLinkId,
        sessions: u64,
        activate: bool,
    ) -> impl Future<Output = Result<GuardOutcome, PaymentsError>> + Send;

    /// Creates a PaymentIntent with `capture_method=manual` (authorise now, capture later).
    fn create_payment_intent(
        &self,
        request: &NewPaymentIntent,
    ) -> impl Future<Output = Result<CreatedPaymentIntent, PaymentsError>> + Send;

    /// Captures an authorised PaymentIntent in full.
    fn capture_payment_intent(
        &self,
        payment_intent: &PaymentIntentId,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<(), PaymentsError>> + Send;

    /// Cancels a PaymentIntent (releases the authorisation).
    fn cancel_payment_intent(
        &self,
        payment_intent: &PaymentIntentId,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<(), PaymentsError>> + Send;

    /// The order a payment belongs to, as stockbridge keys orders: a checkout-API hold (its
    /// PaymentIntent's `metadata.hold_id`) or the Checkout Session that made the PaymentIntent.
    /// `None`: neither (a payment made some other way). Without the PaymentIntent, the charge
    /// is read for it first.
    fn order_of_payment(
        &self,
        payment_intent: Option<&PaymentIntentId>,
        charge: &ChargeId,
    ) -> impl Future<Output = Result<Option<OrderId>, PaymentsError>> + Send;

    /// A PaymentIntent's `status` as Stripe has it now (never its error texts: those change).
    fn payment_intent_status(
        &self,
        payment_intent: &PaymentIntentId,
    ) -> impl Future<Output = Result<IntentStatus, PaymentsError>> + Send;
}

/// Where a PaymentIntent stands at Stripe (its `status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntentStatus {
    /// Authorised, not captured yet: capturable.
    RequiresCapture,
    /// Captured (or paid).
    Succeeded,
    /// Cancelled (by someone, or its authorisation lapsed): never capturable again.
    Canceled,
    /// Any other status (`requires_payment_method`, `processing`, ...).
    Other(String),
}

impl IntentStatus {
    /// From Stripe's `status` string.
    pub fn parse(status: &str) -> Self {
        match status {
            "requires_capture" => Self::RequiresCapture,
            "succeeded" => Self::Succeeded,
            "canceled" => Self::Canceled,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Stripe's `status` string.
    pub fn as_str(&self) -> &str {
        match self {
            Self::RequiresCapture => "requires_capture",
            Self::Succeeded => "succeeded",
            Self::Canceled => "canceled",
            Self::Other(s) => s,
        }
    }
}

/// A PaymentIntent to create for a hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPaymentIntent {
    /// Minor units, from the catalog's prices.
    pub amount: u64,
    /// Currency.
    pub currency: String,
    /// `metadata.hold_id`: how its events find the hold.
    pub hold_id: OrderId,
    /// `metadata.store_id`.
    pub store_id: StoreId,
    /// Receipt e-mail, if the customer gave one.
    pub receipt_email: Option<String>,
    /// Derived from the hold: a retried request gets the same PaymentIntent.
    pub idempotency_key: String,
}

/// The created PaymentIntent.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedPaymentIntent {
    /// Its id.
    pub id: PaymentIntentId,
    /// What the browser confirms it with (never logged).
    pub client_secret: String,
}

impl std::fmt::Debug for CreatedPaymentIntent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedPaymentIntent")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

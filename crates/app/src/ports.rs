//! Ports: one small trait per capability. Adapters live in their own crates.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use stockbridge_domain::{
    CatalogItem, Items, LedgerEntry, Money, OrderId, OrderRecord, PaymentIntentId, PaymentLinkId,
    PriceId, ProductDetails, ProductFields, ProductId, RefundId, RefundRequest, StockLevel,
    StoreId, StripeEventId, StripeLink, StripeMapping, StripePrice, StripeProduct, Timestamp,
    WriteSet,
    take::{StockTake, TakeMark},
};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition of the transaction failed: the state changed since it was read (another
    /// order took stock, or the same order was applied concurrently). Re-read and decide again.
    #[error("the stored state changed since it was read (conditional write refused)")]
    Conflict,
    /// The store throttled us or is temporarily unavailable; retry later.
    #[error("the store is throttling or unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored record could not be read back.
    #[error("stored record {key} is corrupt: {reason}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The item does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Any other failure of the store (permissions, missing table, ...).
    #[error("store request failed: {0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Conflict | Self::Unavailable(_))
    }
}

/// The operator's switches (`stockbridge pause repairs|links|refunds`, `resume`), kept in the
/// table and honoured by every function within a few seconds: for a sale that goes wrong, stop
/// one kind of action everywhere without a deploy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Controls {
    /// The reconciler computes and records every repair and carries none out (no replay, no
    /// link switch, no refund, no session applied).
    #[serde(default)]
    pub repairs_paused: bool,
    /// No Payment Link is switched on or off for stock (the switches are recorded and made by
    /// the reconciler after `resume`).
    #[serde(default)]
    pub links_paused: bool,
    /// No refund is made (oversold orders stay due; the reconciler refunds them after
    /// `resume`).
    #[serde(default)]
    pub refunds_paused: bool,
}

/// One of the operator's switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// [`Controls::repairs_paused`].
    Repairs,
    /// [`Controls::links_paused`].
    Links,
    /// [`Controls::refunds_paused`].
    Refunds,
}

impl Control {
    /// Its stored name.
    pub fn attribute(self) -> &'static str {
        match self {
            Self::Repairs => "repairs_paused",
            Self::Links => "links_paused",
            Self::Refunds => "refunds_paused",
        }
    }
}

/// Writes the operator's switches.
pub trait ControlStore: Send + Sync {
    /// Sets one switch, leaving the others as they are (two operators pausing two things at
    /// once both win). Every function sees it within a few seconds.
    fn set_control(
        &self,
        control: Control,
        paused: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Orders, stock and the ledger.
pub trait InventoryStore: crate::parking::ParkingLot + Counters + Send + Sync {
    /// The operator's switches, as stored at most a few seconds ago.
    fn controls(&self) -> impl Future<Output = Result<Controls, StoreError>> + Send;

    /// Reads an order record (if any) and the catalog items of `products` in `store_id`, with
    /// strongly consistent reads. Products missing from the catalog are absent from the map.
    fn load(
        &self,
        order_id: &OrderId,
        store_id: &StoreId,
        products: &[ProductId],
    ) -> impl Future<Output = Result<(Option<OrderRecord>, Items), StoreError>> + Send;

    /// Reads one order record.
    fn load_order(
        &self,
        order_id: &OrderId,
    ) -> impl Future<Output = Result<Option<OrderRecord>, StoreError>> + Send;

    /// What an operator's operation id was recorded for by a committed write
    /// ([`stockbridge_domain::WriteSet::operation`]); `None`: not recorded.
    fn operation_recorded(
        &self,
        operation: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Commits a decision's write set in ONE transaction, all or nothing.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when any condition fails (an item's version moved, the order
    /// already exists or changed status).
    fn commit(&self, write: &WriteSet) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Carries out a take ([`stockbridge_domain::take`]): ONE conditional update of the item,
    /// relative to what it holds when it lands, leaving the order's mark on it. `Ok(None)`:
    /// refused by its condition (too little left, the boundary or switched-off links changed,
    /// or the order's mark is there already): nothing changed, decide again.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when a transaction holds the item (decide again).
    fn take_stock(
        &self,
        take: &StockTake,
    ) -> impl Future<Output = Result<Option<TakeMark>, StoreError>> + Send;

    /// Records a take: commits `write` (its order and ledger entry, no item write) as
    /// [`InventoryStore::commit`] does, then forgets the take's mark on its item, at once or
    /// with the item's next take (the mark must outlive the record, never the other way).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the order was recorded meanwhile.
    fn record_take(
        &self,
        take: &StockTake,
        write: &WriteSet,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The ledger entry at one version of an item, if any.
    fn ledger_entry(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        version: u64,
    ) -> impl Future<Output = Result<Option<LedgerEntry>, StoreError>> + Send;

    /// Gives back a duplicate take: commits `write` (`stockbridge_domain::take::undo`) as
    /// [`InventoryStore::commit`] does, only while its item still carries `mark` for
    /// `order_id`, and removes the mark with it.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the item changed, the mark is gone, or a ledger entry the
    /// write puts exists.
    fn undo_take(
        &self,
        order_id: &OrderId,
        mark: TakeMark,
        write: &WriteSet,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the marks of recorded takes left on an item (by functions that stopped before
    /// their next take of it), each only once its order is recorded. Returns how many went.
    fn forget_recorded_takes(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Records that an order was refunded.
    fn record_refund(
        &self,
        order_id: &OrderId,
        refund_id: &RefundId,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads one catalog item.
    fn item(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
    ) -> impl Future<Output = Result<Option<CatalogItem>, StoreError>> + Send;

    /// Forgets `links` as switched off by stockbridge, once they are back on — only while the
    /// item is in stock; links recorded since are kept (a later run sees any link still recorded
    /// and tries again).
    fn clear_deactivated(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        links: &[PaymentLinkId],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Creates a catalog item and its first ledger entry.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the item exists.
    fn create_item(
        &self,
        item: &CatalogItem,
        entry: &LedgerEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The store whose item a Payment Link was attached to (by `catalog import`, `backfill` or
    /// the catalog sync), for sessions that do not say their store.
    fn link_store(
        &self,
        link: &PaymentLinkId,
    ) -> impl Future<Output = Result<Option<StoreId>, StoreError>> + Send;

    /// What stockbridge knows of a Payment Link it made (its one product and unit price), so
    /// an order from it is decided without listing its line items; `None` for any other link.
    fn link_terms(
        &self,
        link: &PaymentLinkId,
    ) -> impl Future<Output = Result<Option<stockbridge_domain::LinkTerms>, StoreError>> + Send;

    /// Records a link's terms (the catalog sync, for each link it made or keeps on the
    /// product's current price).
    fn remember_link_terms(
        &self,
        link: &PaymentLinkId,
        terms: &stockbridge_domain::LinkTerms,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Updates an item's name and payment links, not its stock, and remembers each link's
    /// store ([`Self::link_store`]).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the item does not exist.
    fn update_item_details(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        name: &str,
        payment_links: &[PaymentLinkId],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
#[error("publishing to {topic} failed: {source}")]
pub struct PublishError {
    /// The topic.
    pub topic: String,
    /// The cause.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Publishes stock levels to storefronts.
pub trait StockPublisher: Send + Sync {
    /// Publishes one level (retained, QoS 1) on its stock topic.
    fn publish(&self, level: &StockLevel) -> impl Future<Output = Result<(), PublishError>> + Send;
}

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
    },
}

impl LinkSwitch {
    /// True when this call changed the link.
    pub fn switched(&self) -> bool {
        matches!(self, Self::Switched)
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

    /// A PaymentIntent's `status` as Stripe has it now (never its error texts: those change).
    fn payment_intent_status(
        &self,
        payment_intent: &PaymentIntentId,
    ) -> impl Future<Output = Result<IntentStatus, PaymentsError>> + Send;
}

/// One count in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// What is counted and for whom: `holds:email:{hash}`, `fails:client:{hash}`, ...
    pub key: String,
    /// The window's start (ms), a multiple of its length.
    pub start: Timestamp,
    /// Its length in seconds.
    pub seconds: u32,
}

impl Window {
    /// The window of `seconds` that contains `now`.
    pub fn containing(key: String, now: Timestamp, seconds: u32) -> Self {
        let len = i64::from(seconds.max(1)) * 1000;
        Self {
            key,
            start: Timestamp(now.0 - now.0.rem_euclid(len)),
            seconds: seconds.max(1),
        }
    }

    /// Seconds from `now` until the window ends (what `Retry-After` says), at least 1.
    pub fn retry_after(&self, now: Timestamp) -> u32 {
        let end = self.start.0 + i64::from(self.seconds) * 1000;
        u32::try_from(((end - now.0) + 999) / 1000)
            .unwrap_or(self.seconds)
            .max(1)
    }
}

/// Counts in time windows, shared by every instance (the table; expired windows are deleted by
/// its TTL).
pub trait Counters: Send + Sync {
    /// Adds `n` to the window's count unless that would take it past `cap`; whether it was
    /// added.
    fn take(
        &self,
        window: &Window,
        n: u32,
        cap: u32,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The window's count.
    fn count(&self, window: &Window) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Adds `n` to the window's count, without a cap.
    fn add(&self, window: &Window, n: u32) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes `n` back from the window's count (taken by a request that held nothing, or by a
    /// hold that was never paid); never below 0.
    fn give_back(
        &self,
        window: &Window,
        n: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<T: Counters> Counters for std::sync::Arc<T> {
    fn take(
        &self,
        w: &Window,
        n: u32,
        cap: u32,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).take(w, n, cap)
    }
    fn count(&self, w: &Window) -> impl Future<Output = Result<u32, StoreError>> + Send {
        (**self).count(w)
    }
    fn add(&self, w: &Window, n: u32) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).add(w, n)
    }
    fn give_back(&self, w: &Window, n: u32) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).give_back(w, n)
    }
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

/// The current time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Timestamp(i64::try_from(ms).unwrap_or(i64::MAX))
    }
}

// Shared ports: an `Arc` of a port is the port.

impl<T: InventoryStore> InventoryStore for std::sync::Arc<T> {
    fn link_store(
        &self,
        l: &PaymentLinkId,
    ) -> impl Future<Output = Result<Option<StoreId>, StoreError>> + Send {
        (**self).link_store(l)
    }
    fn link_terms(
        &self,
        l: &PaymentLinkId,
    ) -> impl Future<Output = Result<Option<stockbridge_domain::LinkTerms>, StoreError>> + Send
    {
        (**self).link_terms(l)
    }
    fn remember_link_terms(
        &self,
        l: &PaymentLinkId,
        t: &stockbridge_domain::LinkTerms,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).remember_link_terms(l, t)
    }
    fn controls(&self) -> impl Future<Output = Result<Controls, StoreError>> + Send {
        (**self).controls()
    }
    fn load(
        &self,
        o: &OrderId,
        s: &StoreId,
        p: &[ProductId],
    ) -> impl Future<Output = Result<(Option<OrderRecord>, Items), StoreError>> + Send {
        (**self).load(o, s, p)
    }
    fn load_order(
        &self,
        o: &OrderId,
    ) -> impl Future<Output = Result<Option<OrderRecord>, StoreError>> + Send {
        (**self).load_order(o)
    }
    fn operation_recorded(
        &self,
        op: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        (**self).operation_recorded(op)
    }
    fn commit(&self, w: &WriteSet) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).commit(w)
    }
    fn take_stock(
        &self,
        t: &StockTake,
    ) -> impl Future<Output = Result<Option<TakeMark>, StoreError>> + Send {
        (**self).take_stock(t)
    }
    fn record_take(
        &self,
        t: &StockTake,
        w: &WriteSet,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).record_take(t, w)
    }
    fn forget_recorded_takes(
        &self,
        s: &StoreId,
        p: &ProductId,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        (**self).forget_recorded_takes(s, p)
    }
    fn ledger_entry(
        &self,
        s: &StoreId,
        p: &ProductId,
        v: u64,
    ) -> impl Future<Output = Result<Option<LedgerEntry>, StoreError>> + Send {
        (**self).ledger_entry(s, p, v)
    }
    fn undo_take(
        &self,
        o: &OrderId,
        m: TakeMark,
        w: &WriteSet,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).undo_take(o, m, w)
    }
    fn record_refund(
        &self,
        o: &OrderId,
        r: &RefundId,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).record_refund(o, r, at)
    }
    fn item(
        &self,
        s: &StoreId,
        p: &ProductId,
    ) -> impl Future<Output = Result<Option<CatalogItem>, StoreError>> + Send {
        (**self).item(s, p)
    }
    fn clear_deactivated(
        &self,
        s: &StoreId,
        p: &ProductId,
        l: &[PaymentLinkId],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).clear_deactivated(s, p, l)
    }
    fn create_item(
        &self,
        i: &CatalogItem,
        e: &LedgerEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).create_item(i, e)
    }
    fn update_item_details(
        &self,
        s: &StoreId,
        p: &ProductId,
        n: &str,
        l: &[PaymentLinkId],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).update_item_details(s, p, n, l)
    }
}

impl<T: StockPublisher> StockPublisher for std::sync::Arc<T> {
    fn publish(&self, level: &StockLevel) -> impl Future<Output = Result<(), PublishError>> + Send {
        (**self).publish(level)
    }
}

impl<T: Payments> Payments for std::sync::Arc<T> {
    fn line_items(
        &self,
        s: &OrderId,
    ) -> impl Future<Output = Result<Vec<SessionLine>, PaymentsError>> + Send {
        (**self).line_items(s)
    }
    fn refund(
        &self,
        r: &RefundRequest,
    ) -> impl Future<Output = Result<RefundId, PaymentsError>> + Send {
        (**self).refund(r)
    }
    fn set_link_active(
        &self,
        l: &PaymentLinkId,
        a: bool,
        m: Option<&str>,
    ) -> impl Future<Output = Result<LinkSwitch, PaymentsError>> + Send {
        (**self).set_link_active(l, a, m)
    }
    fn create_payment_intent(
        &self,
        r: &NewPaymentIntent,
    ) -> impl Future<Output = Result<CreatedPaymentIntent, PaymentsError>> + Send {
        (**self).create_payment_intent(r)
    }
    fn capture_payment_intent(
        &self,
        p: &PaymentIntentId,
        k: &str,
    ) -> impl Future<Output = Result<(), PaymentsError>> + Send {
        (**self).capture_payment_intent(p, k)
    }
    fn cancel_payment_intent(
        &self,
        p: &PaymentIntentId,
        k: &str,
    ) -> impl Future<Output = Result<(), PaymentsError>> + Send {
        (**self).cancel_payment_intent(p, k)
    }
    fn payment_intent_status(
        &self,
        p: &PaymentIntentId,
    ) -> impl Future<Output = Result<IntentStatus, PaymentsError>> + Send {
        (**self).payment_intent_status(p)
    }
}

impl<T: Clock> Clock for std::sync::Arc<T> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

/// Lists a store's catalog (for the storefront's catalog document).
pub trait CatalogReader: Send + Sync {
    /// Every catalog item of `store_id`, in product-id order.
    fn store_items(
        &self,
        store_id: &StoreId,
    ) -> impl Future<Output = Result<Vec<CatalogItem>, StoreError>> + Send;

    /// Every catalog item of every store.
    fn all_items(&self) -> impl Future<Output = Result<Vec<CatalogItem>, StoreError>> + Send;

    /// Every order recorded as oversold (of one store, or all).
    fn oversold_orders(
        &self,
        store_id: Option<&StoreId>,
    ) -> impl Future<Output = Result<Vec<OrderRecord>, StoreError>> + Send;

    /// Every Checkout Session order whose delayed payment is still awaited (of one store, or
    /// all): held, or oversold and waiting to be refunded once it clears.
    fn awaiting_orders(
        &self,
        store_id: Option<&StoreId>,
    ) -> impl Future<Output = Result<Vec<OrderRecord>, StoreError>> + Send;

    /// Every order still `pending` (checkout holds and delayed payments) of one store, or all:
    /// what holds units.
    fn pending_orders(
        &self,
        store_id: Option<&StoreId>,
    ) -> impl Future<Output = Result<Vec<OrderRecord>, StoreError>> + Send;

    /// One page of the checkout holds still pending whose expiry is at or before `now`, earliest
    /// expiry first, starting after `after`, at most `limit` (the sweeper releases each page
    /// before it asks for the next, so a backlog of any size makes progress). The listing may
    /// lag the writes by a moment (an index): a hold settled meanwhile is found and skipped.
    fn expired_holds(
        &self,
        now: Timestamp,
        after: Option<&HoldKey>,
        limit: u32,
    ) -> impl Future<Output = Result<HoldPage, StoreError>> + Send;
}

/// A pending hold as the sweeper lists it: when it expires, and its order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HoldKey {
    /// The hold's expiry.
    pub expires_at: Timestamp,
    /// Its order.
    pub order_id: OrderId,
}

/// One page of expired holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoldPage {
    /// The holds, earliest expiry first.
    pub holds: Vec<HoldKey>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<HoldKey>,
}

/// What a buyer sees of a Payment Link: where it is, whether it sells, what and for how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSummary {
    /// The link's public URL.
    pub url: String,
    /// Whether it currently accepts payments.
    pub active: bool,
    /// Unit price of its first line, in minor units.
    pub unit_amount: Option<i64>,
    /// Its currency (lower-case ISO code).
    pub currency: Option<String>,
    /// The product's name as Stripe shows it.
    pub product_name: Option<String>,
    /// The product's description.
    pub description: Option<String>,
    /// The product's image URLs.
    pub images: Vec<String>,
}

/// Reads Payment Links for the storefront.
pub trait LinkDirectory: Send + Sync {
    /// The link's URL, state, price and product.
    fn link_summary(
        &self,
        link: &PaymentLinkId,
    ) -> impl Future<Output = Result<LinkSummary, PaymentsError>> + Send;

    /// Whether the link currently accepts payments (`None`: Stripe does not know it).
    fn link_active(
        &self,
        link: &PaymentLinkId,
    ) -> impl Future<Output = Result<Option<bool>, PaymentsError>> + Send;
}

/// A Stripe event as listed by `/v1/events`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    /// `evt_…`.
    pub id: StripeEventId,
    /// When Stripe created it (Unix seconds).
    pub created: i64,
    /// The whole event (`id`, `type`, `livemode`, `data.object`, …).
    pub event: serde_json::Value,
}

/// Stripe's event log (`/v1/events`, kept 30 days, eventually consistent).
pub trait EventLog: Send + Sync {
    /// Every event of `types` created from `from` to `to` (Unix seconds, both included), oldest
    /// first (every page).
    fn events_between(
        &self,
        types: &[&str],
        from: i64,
        to: i64,
    ) -> impl Future<Output = Result<Vec<LoggedEvent>, PaymentsError>> + Send;
}

/// Where event replay stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Every handled event created up to this second (Unix seconds) has been replayed.
    pub created: i64,
    /// The last event replayed, if any (for people: the replay reads only `created`).
    pub event_id: Option<StripeEventId>,
}

/// Stores the replay cursor.
pub trait CursorStore: Send + Sync {
    /// The cursor, if one was stored.
    fn cursor(&self) -> impl Future<Output = Result<Option<Cursor>, StoreError>> + Send;

    /// Moves the cursor from `previous` (compare-and-set: a concurrent run that moved it makes
    /// this a [`StoreError::Conflict`]).
    fn advance_cursor(
        &self,
        previous: Option<&Cursor>,
        next: &Cursor,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where the reconciler records every discrepancy it finds and what it did.
pub trait ReconciliationLog: Send + Sync {
    /// Records one discrepancy found at `at`, and whether it was repaired.
    fn record(
        &self,
        at: Timestamp,
        discrepancy: &stockbridge_domain::invariants::Discrepancy,
        repaired: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<T: CatalogReader> CatalogReader for std::sync::Arc<T> {
    fn store_items(
        &self,
        s: &StoreId,
    ) -> impl Future<Output = Result<Vec<CatalogItem>, StoreError>> + Send {
        (**self).store_items(s)
    }
    fn all_items(&self) -> impl Future<Output = Result<Vec<CatalogItem>, StoreError>> + Send {
        (**self).all_items()
    }
    fn oversold_orders(
        &self,
        s: Option<&StoreId>,
    ) -> impl Future<Output = Result<Vec<OrderRecord>, StoreError>> + Send {
        (**self).oversold_orders(s)
    }
    fn awaiting_orders(
        &self,
        s: Option<&StoreId>,
    ) -> impl Future<Output = Result<Vec<OrderRecord>, StoreError>> + Send {
        (**self).awaiting_orders(s)
    }
    fn pending_orders(
        &self,
        s: Option<&StoreId>,
    ) -> impl Future<Output = Result<Vec<OrderRecord>, StoreError>> + Send {
        (**self).pending_orders(s)
    }
    fn expired_holds(
        &self,
        now: Timestamp,
        after: Option<&HoldKey>,
        limit: u32,
    ) -> impl Future<Output = Result<HoldPage, StoreError>> + Send {
        (**self).expired_holds(now, after, limit)
    }
}

impl<T: ReconciliationLog> ReconciliationLog for std::sync::Arc<T> {
    fn record(
        &self,
        at: Timestamp,
        d: &stockbridge_domain::invariants::Discrepancy,
        repaired: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).record(at, d, repaired)
    }
}

impl<T: LinkDirectory> LinkDirectory for std::sync::Arc<T> {
    fn link_summary(
        &self,
        l: &PaymentLinkId,
    ) -> impl Future<Output = Result<LinkSummary, PaymentsError>> + Send {
        (**self).link_summary(l)
    }
    fn link_active(
        &self,
        l: &PaymentLinkId,
    ) -> impl Future<Output = Result<Option<bool>, PaymentsError>> + Send {
        (**self).link_active(l)
    }
}

/// A completed Checkout Session as Stripe lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    /// `cs_…`.
    pub id: OrderId,
    /// When it was created (Unix seconds).
    pub created: i64,
    /// The session object (`id`, `payment_status`, `payment_intent`, `payment_link`,
    /// `metadata`, `livemode`), as the inventory handler decodes it.
    pub object: serde_json::Value,
}

/// Lists recent Checkout Sessions (for the reconciler's "every paid session has an order").
pub trait SessionLog: Send + Sync {
    /// Every completed session created at or after `since` (Unix seconds).
    fn completed_sessions_since(
        &self,
        since: i64,
    ) -> impl Future<Output = Result<Vec<SessionSummary>, PaymentsError>> + Send;

    /// Where a session's payment stands now (its `payment_status`, and its PaymentIntent's
    /// status for a delayed method).
    fn session_payment(
        &self,
        session: &OrderId,
    ) -> impl Future<Output = Result<SessionPayment, PaymentsError>> + Send;
}

/// Where a Checkout Session's payment stands at Stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionPayment {
    /// Paid (or nothing to pay).
    Paid,
    /// A delayed method still clearing.
    Pending,
    /// The delayed payment failed (its PaymentIntent wants another method, or was cancelled).
    Failed,
}

impl<T: SessionLog> SessionLog for std::sync::Arc<T> {
    fn session_payment(
        &self,
        s: &OrderId,
    ) -> impl Future<Output = Result<SessionPayment, PaymentsError>> + Send {
        (**self).session_payment(s)
    }
    fn completed_sessions_since(
        &self,
        since: i64,
    ) -> impl Future<Output = Result<Vec<SessionSummary>, PaymentsError>> + Send {
        (**self).completed_sessions_since(since)
    }
}

/// One page of a Stripe list (`limit=100`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in Stripe's order.
    pub items: Vec<T>,
    /// Whether more follow (pass the last item's id as `starting_after`).
    pub has_more: bool,
}

/// A product's catalog record and its Stripe mapping, read together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The merchandising details.
    pub details: ProductDetails,
    /// What it maps to at Stripe (default: nothing yet).
    pub mapping: StripeMapping,
}

/// The merchandising catalog: product details, their Stripe mapping, and named checkpoints.
pub trait CatalogStore: Send + Sync {
    /// A product's details and mapping (strongly consistent).
    fn entry(
        &self,
        product: &ProductId,
    ) -> impl Future<Output = Result<Option<CatalogEntry>, StoreError>> + Send;

    /// Several products' entries (absent ones are missing from the map).
    fn entries(
        &self,
        products: &[ProductId],
    ) -> impl Future<Output = Result<HashMap<ProductId, CatalogEntry>, StoreError>> + Send;

    /// Writes details: creates them when `expected_revision` is `None`, else replaces them if
    /// the stored revision is still `expected_revision`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the condition fails.
    fn put_details(
        &self,
        details: &ProductDetails,
        expected_revision: Option<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes a mapping if the stored one still has `expected_version` (0: none stored).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when another writer got there first.
    fn save_mapping(
        &self,
        product: &ProductId,
        mapping: &StripeMapping,
        expected_version: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One page of one segment of a parallel scan over every product's entry; pass the returned
    /// position back to continue (`None`: the segment is done).
    fn scan_entries(
        &self,
        segment: u32,
        segments: u32,
        start: Option<String>,
    ) -> impl Future<Output = Result<(Vec<CatalogEntry>, Option<String>), StoreError>> + Send;

    /// A named checkpoint (backfill progress, last reconcile summary).
    fn checkpoint(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Stores a named checkpoint.
    fn save_checkpoint(
        &self,
        name: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The Stripe catalog calls: Products, Prices and Payment Links.
pub trait StripeCatalog: Send + Sync {
    /// A Product (`None`: Stripe does not know it).
    fn product(
        &self,
        id: &ProductId,
    ) -> impl Future<Output = Result<Option<StripeProduct>, PaymentsError>> + Send;

    /// Creates a Product with our id.
    fn create_product(
        &self,
        id: &ProductId,
        fields: &ProductFields,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<StripeProduct, PaymentsError>> + Send;

    /// Sets a Product's catalog-owned fields (and its default price).
    fn update_product(
        &self,
        id: &ProductId,
        fields: &ProductFields,
        default_price: Option<&PriceId>,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<StripeProduct, PaymentsError>> + Send;

    /// A Price (`None`: Stripe does not know it).
    fn price(
        &self,
        id: &PriceId,
    ) -> impl Future<Output = Result<Option<StripePrice>, PaymentsError>> + Send;

    /// The product's active prices.
    fn active_prices(
        &self,
        product: &ProductId,
    ) -> impl Future<Output = Result<Vec<StripePrice>, PaymentsError>> + Send;

    /// Creates a one-time Price.
    fn create_price(
        &self,
        product: &ProductId,
        money: &Money,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<StripePrice, PaymentsError>> + Send;

    /// Archives a Price (`active=false`): it can no longer be used for new purchases.
    fn archive_price(&self, id: &PriceId)
    -> impl Future<Output = Result<(), PaymentsError>> + Send;

    /// A Payment Link with its prices (`None`: Stripe does not know it).
    fn link(
        &self,
        id: &PaymentLinkId,
    ) -> impl Future<Output = Result<Option<StripeLink>, PaymentsError>> + Send;

    /// Creates a Payment Link selling one unit of `price`, with `metadata.store_id` and
    /// `metadata.product_id`.
    fn create_link(
        &self,
        price: &PriceId,
        store: &StoreId,
        product: &ProductId,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<StripeLink, PaymentsError>> + Send;

    /// One page (100) of active prices, each with its Product, after `starting_after`.
    fn prices_page(
        &self,
        starting_after: Option<&PriceId>,
    ) -> impl Future<Output = Result<Page<(StripePrice, StripeProduct)>, PaymentsError>> + Send;

    /// One page (100) of Products, each with its default Price if any, after `starting_after`.
    fn products_page(
        &self,
        starting_after: Option<&ProductId>,
    ) -> impl Future<Output = Result<Page<(StripeProduct, Option<StripePrice>)>, PaymentsError>> + Send;

    /// One page (100) of Payment Links with their prices, after `starting_after`.
    fn links_page(
        &self,
        starting_after: Option<&PaymentLinkId>,
    ) -> impl Future<Output = Result<Page<StripeLink>, PaymentsError>> + Send;
}

impl<T: CatalogStore> CatalogStore for std::sync::Arc<T> {
    fn entry(
        &self,
        p: &ProductId,
    ) -> impl Future<Output = Result<Option<CatalogEntry>, StoreError>> + Send {
        (**self).entry(p)
    }
    fn entries(
        &self,
        p: &[ProductId],
    ) -> impl Future<Output = Result<HashMap<ProductId, CatalogEntry>, StoreError>> + Send {
        (**self).entries(p)
    }
    fn put_details(
        &self,
        d: &ProductDetails,
        r: Option<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put_details(d, r)
    }
    fn save_mapping(
        &self,
        p: &ProductId,
        m: &StripeMapping,
        v: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).save_mapping(p, m, v)
    }
    fn scan_entries(
        &self,
        segment: u32,
        segments: u32,
        start: Option<String>,
    ) -> impl Future<Output = Result<(Vec<CatalogEntry>, Option<String>), StoreError>> + Send {
        (**self).scan_entries(segment, segments, start)
    }
    fn checkpoint(
        &self,
        n: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        (**self).checkpoint(n)
    }
    fn save_checkpoint(
        &self,
        n: &str,
        v: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).save_checkpoint(n, v)
    }
}

impl<T: StripeCatalog> StripeCatalog for std::sync::Arc<T> {
    fn product(
        &self,
        id: &ProductId,
    ) -> impl Future<Output = Result<Option<StripeProduct>, PaymentsError>> + Send {
        (**self).product(id)
    }
    fn create_product(
        &self,
        id: &ProductId,
        f: &ProductFields,
        k: &str,
    ) -> impl Future<Output = Result<StripeProduct, PaymentsError>> + Send {
        (**self).create_product(id, f, k)
    }
    fn update_product(
        &self,
        id: &ProductId,
        f: &ProductFields,
        d: Option<&PriceId>,
        k: &str,
    ) -> impl Future<Output = Result<StripeProduct, PaymentsError>> + Send {
        (**self).update_product(id, f, d, k)
    }
    fn price(
        &self,
        id: &PriceId,
    ) -> impl Future<Output = Result<Option<StripePrice>, PaymentsError>> + Send {
        (**self).price(id)
    }
    fn active_prices(
        &self,
        p: &ProductId,
    ) -> impl Future<Output = Result<Vec<StripePrice>, PaymentsError>> + Send {
        (**self).active_prices(p)
    }
    fn create_price(
        &self,
        p: &ProductId,
        m: &Money,
        k: &str,
    ) -> impl Future<Output = Result<StripePrice, PaymentsError>> + Send {
        (**self).create_price(p, m, k)
    }
    fn archive_price(
        &self,
        id: &PriceId,
    ) -> impl Future<Output = Result<(), PaymentsError>> + Send {
        (**self).archive_price(id)
    }
    fn link(
        &self,
        id: &PaymentLinkId,
    ) -> impl Future<Output = Result<Option<StripeLink>, PaymentsError>> + Send {
        (**self).link(id)
    }
    fn create_link(
        &self,
        price: &PriceId,
        s: &StoreId,
        p: &ProductId,
        k: &str,
    ) -> impl Future<Output = Result<StripeLink, PaymentsError>> + Send {
        (**self).create_link(price, s, p, k)
    }
    fn prices_page(
        &self,
        a: Option<&PriceId>,
    ) -> impl Future<Output = Result<Page<(StripePrice, StripeProduct)>, PaymentsError>> + Send
    {
        (**self).prices_page(a)
    }
    fn products_page(
        &self,
        a: Option<&ProductId>,
    ) -> impl Future<Output = Result<Page<(StripeProduct, Option<StripePrice>)>, PaymentsError>> + Send
    {
        (**self).products_page(a)
    }
    fn links_page(
        &self,
        a: Option<&PaymentLinkId>,
    ) -> impl Future<Output = Result<Page<StripeLink>, PaymentsError>> + Send {
        (**self).links_page(a)
    }
}

impl<T: CursorStore> CursorStore for std::sync::Arc<T> {
    fn cursor(&self) -> impl Future<Output = Result<Option<Cursor>, StoreError>> + Send {
        (**self).cursor()
    }
    fn advance_cursor(
        &self,
        previous: Option<&Cursor>,
        next: &Cursor,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).advance_cursor(previous, next)
    }
}

impl<T: EventLog> EventLog for std::sync::Arc<T> {
    fn events_between(
        &self,
        types: &[&str],
        from: i64,
        to: i64,
    ) -> impl Future<Output = Result<Vec<LoggedEvent>, PaymentsError>> + Send {
        (**self).events_between(types, from, to)
    }
}

/// Why a notification failed.
#[derive(Debug, thiserror::Error)]
#[error("publishing the reconciliation summary failed: {0}")]
pub struct NotifyError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Publishes each reconciler run's summary (the `stockbridge.reconciliation` event).
pub trait Notifier: Send + Sync {
    /// Publishes one summary.
    fn notify(
        &self,
        summary: &crate::reconcile::RunSummary,
    ) -> impl Future<Output = Result<(), NotifyError>> + Send;
}

/// A [`Notifier`] that publishes nothing (the CLI without `--notify`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNotifier;

impl Notifier for NoNotifier {
    async fn notify(&self, _summary: &crate::reconcile::RunSummary) -> Result<(), NotifyError> {
        Ok(())
    }
}

//! What the reconciler reads and records: the catalog, links, events, sessions, its findings.

use super::*;

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

    /// Whether the link currently accepts payments and what limit it has (`None`: Stripe does
    /// not know it).
    fn link_state(
        &self,
        link: &PaymentLinkId,
    ) -> impl Future<
        Output = Result<Option<stockbridge_domain::link_guard::LinkSeen>, PaymentsError>,
    > + Send;
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

/// What the reconciler's checks read and record, under one name: the stock store, the catalog
/// reader, the reconciliation log and the parking lot.
pub trait ReconcilerStore: InventoryStore + CatalogReader + ReconciliationLog + ParkingLot {}

impl<T: InventoryStore + CatalogReader + ReconciliationLog + ParkingLot> ReconcilerStore for T {}

/// What the reconciler asks Stripe, under one name: payments, payment links, the session list.
pub trait ReconcilerStripe: Payments + LinkDirectory + SessionLog {}

impl<T: Payments + LinkDirectory + SessionLog> ReconcilerStripe for T {}

/// A stock store that can also list the catalog (the held-units check, the sweeper).
pub trait ListingStore: InventoryStore + CatalogReader {}

impl<T: InventoryStore + CatalogReader> ListingStore for T {}

//! What a decision says: the write set for one conditional transaction, the effects to run
//! after it, and the facts a checkout decision is made from.

use super::*;

/// Why a stock level changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    /// A paid or held order took stock.
    Order,
    /// A held order's payment failed and its stock came back.
    Release,
    /// An operator set the level.
    Set,
    /// An operator adjusted the level.
    Adjust,
    /// Units moved between a spread product's item and its shards, or between shards
    /// ([`crate::shard`]): none sold, none added.
    Move,
    /// A sold order's units came back: refunded in full or a dispute lost, in a store whose
    /// returns policy says so ([`crate::after_sale`]).
    Return,
}

impl CauseKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Order => "order",
            Self::Release => "release",
            Self::Set => "set",
            Self::Adjust => "adjust",
            Self::Move => "move",
            Self::Return => "return",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "order" => Self::Order,
            "release" => Self::Release,
            "set" => Self::Set,
            "adjust" => Self::Adjust,
            "move" => Self::Move,
            "return" => Self::Return,
            _ => return None,
        })
    }
}

/// The cause of a stock movement, as written to the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// What kind of change.
    pub kind: CauseKind,
    /// The Stripe event that caused it, if any.
    pub stripe_event_id: Option<StripeEventId>,
    /// The order it belongs to, if any.
    pub order_id: Option<OrderId>,
    /// Who or what else (e.g. `cli`).
    pub actor: Option<String>,
}

/// One ledger entry: a stock movement and the level it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The store.
    pub store_id: StoreId,
    /// The product.
    pub product_id: ProductId,
    /// The item version this movement produced (unique per item, so the entry's key).
    pub version: u64,
    /// Signed change in units.
    pub delta: i64,
    /// Units available after the movement.
    pub level: u64,
    /// Units held by pending checkouts after the movement.
    pub held: u64,
    /// The operator's operation id, for a change made by a person.
    pub operation: Option<String>,
    /// Why.
    pub cause: Cause,
    /// When.
    pub at: Timestamp,
    /// The shard whose stock moved ([`crate::shard`]): the entry is kept under the shard's key
    /// and `version` is the shard's. `None`: the item's.
    pub shard: Option<u16>,
}

/// A conditional write to a catalog item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemUpdate {
    /// The store.
    pub store_id: StoreId,
    /// The product.
    pub product_id: ProductId,
    /// The version the decision saw; the write is refused if the item changed since.
    pub expected_version: u64,
    /// The new level.
    pub available: u64,
    /// The new held units.
    pub held: u64,
    /// The new version: `expected_version + 1` for a stock change, unchanged otherwise.
    pub version: u64,
    /// The links stockbridge had switched off when the decision read the item; the write is
    /// refused if they changed since (so two writers never lose each other's links).
    pub expected_deactivated_links: Vec<PaymentLinkId>,
    /// The full new set of links stockbridge has switched off.
    pub deactivated_links: Vec<PaymentLinkId>,
    /// When.
    pub at: Timestamp,
    /// The item's management boundary after the write ([`CatalogItem::managed_since`]): moved
    /// to `at` by a recount ([`StockChange::Recount`]), unchanged otherwise.
    pub managed_since: Timestamp,
}

/// A write to the order record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderWrite {
    /// Create the record; refused if one exists (the order was applied concurrently).
    Create(OrderRecord),
    /// Replace the record; refused unless its status is still `expected_status`.
    Update {
        /// The new record.
        record: OrderRecord,
        /// The status the decision saw.
        expected_status: OrderStatus,
        /// The payment state the decision saw: with the status, it makes a duplicate delivery's
        /// update conflict instead of overwriting what happened in between.
        expected_payment: PaymentState,
        /// The after-sale revision the decision saw ([`OrderRecord::after_sale_revision`]): a
        /// refund recorded in between is never overwritten, nor applied twice.
        expected_after_sale: u32,
    },
}

/// Everything one decision writes, all or nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSet {
    /// The order record write.
    pub order: Option<OrderWrite>,
    /// Item writes (each conditional on the version the decision saw).
    pub items: Vec<ItemUpdate>,
    /// Items only checked (unchanged but read by the decision).
    pub checks: Vec<(StoreId, ProductId, u64)>,
    /// Ledger entries, one per stock movement.
    pub ledger: Vec<LedgerEntry>,
    /// An operator's operation: recorded with the write, which is refused if its id was
    /// recorded before (a rerun after an unclear error never applies the change twice).
    pub operation: Option<Operation>,
    /// The merchant's restock of a sold-out item, recorded with the stock it brought so the
    /// back-in-stock announcement is never lost ([`crate::waitlist`]).
    pub restock: Option<Restock>,
}

/// A merchant's restock of a sold-out item: its available level rose from 0 by a `stock set`,
/// `stock adjust` or a catalog import that sets stock (never by a hold lapsing, a payment
/// failing or a refund's return: see [`crate::waitlist`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restock {
    /// The store.
    pub store_id: StoreId,
    /// The product.
    pub product_id: ProductId,
    /// The item's version the restock wrote (one restock per version).
    pub version: u64,
    /// Units available after it.
    pub available: u64,
    /// When.
    pub at: Timestamp,
}

/// An operator's operation as recorded: its id, and what it was (so a rerun of the same id
/// with another change is told apart from a rerun of the same change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The id the operator gave (or the CLI made).
    pub id: String,
    /// What it does: `{store}/{product}: {change}`.
    pub what: String,
}

impl WriteSet {
    /// True when there is nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.order.is_none() && self.items.is_empty() && self.ledger.is_empty()
    }
}

/// Links of one item to switch back on, then to forget as switched off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reactivation {
    /// The store.
    pub store_id: StoreId,
    /// The product.
    pub product_id: ProductId,
    /// The links.
    pub links: Vec<PaymentLinkId>,
}

impl Reactivation {
    pub(super) fn of(item: &CatalogItem) -> Option<Self> {
        (!item.deactivated_links.is_empty()).then(|| Self {
            store_id: item.store_id.clone(),
            product_id: item.product_id.clone(),
            links: item.deactivated_links.clone(),
        })
    }
}

/// Links of one item to switch off because it sold out. The switch acts on the item's level at
/// call time: a restock committed since owns the links, so a late switch-off never lands after
/// its switch-on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deactivation {
    /// The store.
    pub store_id: StoreId,
    /// The product.
    pub product_id: ProductId,
    /// Links the decision has just recorded as switched off by stockbridge: one found already
    /// off at Stripe with someone else's message was switched off by someone else, so it is
    /// forgotten again (stockbridge switches back on only what it switched off itself).
    pub fresh: Vec<PaymentLinkId>,
    /// Links recorded earlier, made sure of (a late switch-on may have landed): found off, that
    /// was stockbridge's own switch.
    pub recorded: Vec<PaymentLinkId>,
}

impl Deactivation {
    pub(super) fn of(
        item: &CatalogItem,
        fresh: Vec<PaymentLinkId>,
        recorded: Vec<PaymentLinkId>,
    ) -> Option<Self> {
        (!fresh.is_empty() || !recorded.is_empty()).then(|| Self {
            store_id: item.store_id.clone(),
            product_id: item.product_id.clone(),
            fresh,
            recorded,
        })
    }
}

impl Effects {
    /// Every link to switch off, whatever its item.
    pub fn links_off(&self) -> Vec<PaymentLinkId> {
        self.deactivate
            .iter()
            .flat_map(|d| d.fresh.iter().chain(&d.recorded).cloned())
            .collect()
    }
}

/// A refund to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The order.
    pub order_id: OrderId,
    /// The payment to refund.
    pub payment_intent: PaymentIntentId,
    /// How much, in minor units (`None`: in full).
    pub amount: Option<u64>,
    /// Derived from the order, so a retry never refunds twice.
    pub idempotency_key: String,
}

/// Side effects to run after the commit. All idempotent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// Stock levels to publish.
    pub publish: Vec<StockLevel>,
    /// Payment links to switch off (sold out), per item.
    pub deactivate: Vec<Deactivation>,
    /// Payment links to switch back on (restocked). Each item keeps them recorded as switched
    /// off until they are back on, so a failed switch is retried by the next run.
    pub reactivate: Vec<Reactivation>,
    /// A refund to make.
    pub refund: Option<RefundRequest>,
    /// A held order that became a sale: capture its authorised PaymentIntent.
    pub capture: Option<IntentAction>,
    /// A held order that cannot be filled: cancel its PaymentIntent (release the authorisation;
    /// no money moved, so no refund and no fee).
    pub cancel: Option<IntentAction>,
    /// Items whose stock the merchant changed: set their links' Stripe-side limits again
    /// ([`crate::link_guard`]; an order through a link needs none).
    pub guard: Vec<(StoreId, ProductId)>,
}

/// A capture or cancellation of a hold's PaymentIntent, with a key derived from the hold so no
/// retry ever does it twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentAction {
    /// The hold.
    pub order_id: OrderId,
    /// Its PaymentIntent.
    pub payment_intent: PaymentIntentId,
    /// `stockbridge-capture-{hold}` or `stockbridge-cancel-{hold}`.
    pub idempotency_key: String,
}

/// What happened to an order, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stock was taken.
    Fulfilled,
    /// Stock is kept for an order whose delayed payment has not cleared yet.
    AwaitingPayment,
    /// A held order's payment cleared.
    Confirmed,
    /// Stock was short: nothing taken; refunded if paid.
    Oversold(Vec<Shortfall>),
    /// No product of the order is in the catalog.
    Unmatched,
    /// The order was paid before stockbridge began managing its products' stock: recorded,
    /// nothing taken, nothing refunded.
    Predates,
    /// The order's payment time is only bounded from below, and the bound is before some
    /// product's management boundary: whether it is a new sale cannot be told, so nothing is
    /// written (the reconciler reports it; its event, which carries the time, decides).
    PaidTimeUnknown,
    /// A held order's payment failed; its stock came back.
    Released,
    /// A payment failed before any stock was held.
    PaymentFailed,
    /// A hold's PaymentIntent was cancelled: terminal, any stock it still took came back.
    Canceled,
    /// Stripe refused for good to capture a hold's sale: its stock came back.
    CaptureRefused,
    /// The fact was already applied; only effects are re-run.
    AlreadyApplied(OrderStatus),
    /// An operator changed a level.
    StockChanged,
    /// A refund or a closed dispute was recorded on the order; no units moved.
    AfterSaleRecorded,
    /// A refund or a closed dispute was recorded and the order's units went back to stock.
    Returned(crate::after_sale::ReturnCause),
    /// A refund or dispute of a payment stockbridge has no order for (paid before its start,
    /// not its products, or its record was deleted after the retention period): nothing done.
    NoOrder,
}

/// A rule's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What to commit.
    pub write: WriteSet,
    /// What to do afterwards.
    pub effects: Effects,
    /// What happened.
    pub outcome: Outcome,
}

/// An order as a Checkout Session reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutFacts {
    /// The Checkout Session id.
    pub order_id: OrderId,
    /// The store.
    pub store_id: StoreId,
    /// All lines (merged per product), known to the catalog or not.
    pub lines: Vec<OrderLine>,
    /// Paid, or a delayed method still clearing.
    pub payment: PaymentState,
    /// The PaymentIntent.
    pub payment_intent: Option<PaymentIntentId>,
    /// The Payment Link the session came from.
    pub payment_link: Option<PaymentLinkId>,
    /// The Stripe event.
    pub event_id: StripeEventId,
    /// When the order was paid (or completed, for a delayed payment still clearing).
    pub paid_at: PaidAt,
    /// Each product's `amount_total` as Stripe charged it (minor units; absent when unknown):
    /// what a partial refund returns.
    pub amounts: BTreeMap<ProductId, u64>,
}

/// When an order was paid, as far as the fact tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaidAt {
    /// Known: the `created` of the Stripe event that reported the payment.
    At(Timestamp),
    /// Only a lower bound is known: the reconciler sees a session's opening time, not when it
    /// was paid.
    NotBefore(Timestamp),
}

/// The catalog items an order names, by product.
pub type Items = BTreeMap<ProductId, CatalogItem>;

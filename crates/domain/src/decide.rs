//! The inventory rules.
//!
//! Each rule takes the current state (the order record, if any, and the catalog items the order
//! names, each with its version), the incoming fact and `now`, and returns a [`Decision`]:
//! - a [`WriteSet`] that must be committed in ONE conditional transaction: every item it reads is
//!   checked against the version the decision saw, so a decision made on stale state never lands;
//! - the [`Effects`] to carry out after the commit (publish, switch links off or on, refund). They
//!   are idempotent, and re-derived from stored state on a redelivery
//!   ([`effects_for_existing`]), so a crash between the commit and an effect loses nothing.

use std::collections::BTreeMap;

use crate::{
    CatalogItem, OrderId, OrderLine, OrderRecord, OrderStatus, PaymentIntentId, PaymentLinkId,
    PaymentState, ProductId, Shortfall, StockLevel, StoreId, StripeEventId, Timestamp,
};

/// The most distinct catalog products one order may name. A DynamoDB transaction holds at most
/// 100 actions; an order writes its record plus an item update and a ledger entry per product.
pub const MAX_PRODUCTS_PER_ORDER: usize = 49;

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
}

impl CauseKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Order => "order",
            Self::Release => "release",
            Self::Set => "set",
            Self::Adjust => "adjust",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "order" => Self::Order,
            "release" => Self::Release,
            "set" => Self::Set,
            "adjust" => Self::Adjust,
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
    fn of(item: &CatalogItem) -> Option<Self> {
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
    fn of(
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
    /// Stock is held until a delayed payment clears.
    Held,
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

fn union(a: &[PaymentLinkId], b: impl IntoIterator<Item = PaymentLinkId>) -> Vec<PaymentLinkId> {
    let mut out = a.to_vec();
    for l in b {
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

/// Records `links` as the links stockbridge switched off for `item`, without a stock change
/// (same version), conditional on the record it read.
pub fn record_links_off(item: &CatalogItem, links: Vec<PaymentLinkId>) -> ItemUpdate {
    ItemUpdate {
        store_id: item.store_id.clone(),
        product_id: item.product_id.clone(),
        expected_version: item.version,
        available: item.available,
        held: item.held,
        version: item.version,
        expected_deactivated_links: item.deactivated_links.clone(),
        deactivated_links: links,
        at: item.updated_at,
        managed_since: item.managed_since,
    }
}

/// The links to switch off when `item` sells out: its own links and the session's link.
fn sold_out_links(item: &CatalogItem, session_link: Option<&PaymentLinkId>) -> Vec<PaymentLinkId> {
    union(
        &item.deactivated_links,
        item.payment_links
            .iter()
            .cloned()
            .chain(session_link.cloned()),
    )
}

/// The switch-offs for `item` at 0, given every link that should be off: those not yet recorded
/// (recorded by this decision, forgotten again if found off with someone else's message) and
/// those recorded earlier (made sure of: a late switch-on may have landed).
fn sold_out_switches(item: &CatalogItem, links: &[PaymentLinkId]) -> Option<Deactivation> {
    let fresh = links
        .iter()
        .filter(|l| !item.deactivated_links.contains(l))
        .cloned()
        .collect();
    Deactivation::of(item, fresh, item.deactivated_links.clone())
}

/// Forgets `links` as switched off by stockbridge for `item` (someone else's, or replaced),
/// without a stock change, conditional on the record it read; `None` when none is recorded.
pub fn forget_links_off(item: &CatalogItem, links: &[PaymentLinkId]) -> Option<ItemUpdate> {
    let rest: Vec<PaymentLinkId> = item
        .deactivated_links
        .iter()
        .filter(|l| !links.contains(l))
        .cloned()
        .collect();
    (rest != item.deactivated_links).then(|| record_links_off(item, rest))
}

/// A stock movement on one item: the update, its ledger entry, the level to publish and the
/// links to switch off or on when the level crosses zero.
pub(crate) struct Movement {
    update: ItemUpdate,
    entry: LedgerEntry,
    level: StockLevel,
    deactivate: Vec<Deactivation>,
    reactivate: Option<Reactivation>,
}

pub(crate) fn move_stock(
    item: &CatalogItem,
    available: u64,
    held: u64,
    session_link: Option<&PaymentLinkId>,
    cause: Cause,
    now: Timestamp,
) -> Movement {
    let version = item.version + 1;
    // At 0 every link selling the product is switched off and recorded. Above 0, links still
    // recorded as switched off (a restock, or an earlier reactivation that failed) are switched
    // back on; they stay recorded until that succeeds.
    let (deactivated_links, deactivate, reactivate) = if available == 0 {
        let links = sold_out_links(item, session_link);
        let off = sold_out_switches(item, &links).into_iter().collect();
        (links, off, None)
    } else {
        (
            item.deactivated_links.clone(),
            Vec::new(),
            Reactivation::of(item),
        )
    };
    let delta = i128::from(available) - i128::from(item.available);
    Movement {
        update: ItemUpdate {
            store_id: item.store_id.clone(),
            product_id: item.product_id.clone(),
            expected_version: item.version,
            available,
            held,
            version,
            expected_deactivated_links: item.deactivated_links.clone(),
            deactivated_links,
            at: now,
            managed_since: item.managed_since,
        },
        entry: LedgerEntry {
            store_id: item.store_id.clone(),
            product_id: item.product_id.clone(),
            version,
            delta: i64::try_from(delta).unwrap_or(if delta < 0 { i64::MIN } else { i64::MAX }),
            level: available,
            held,
            operation: None,
            cause,
            at: now,
        },
        level: StockLevel {
            product_id: item.product_id.clone(),
            store_id: item.store_id.clone(),
            available,
            held,
            version,
            updated_at: now,
        },
        deactivate,
        reactivate,
    }
}

/// Returns every line's units to its item: from `held` while the order is `Pending` (a released
/// hold, a failed delayed payment), from the sale otherwise (a sale that cannot be paid).
pub(crate) fn return_stock(
    order: &OrderRecord,
    items: &Items,
    cause: &Cause,
    now: Timestamp,
    write: &mut WriteSet,
    effects: &mut Effects,
) {
    for line in &order.lines {
        // A held line's item always exists: items are never deleted while orders hold them.
        let Some(item) = items.get(&line.product_id) else {
            continue;
        };
        let q = line.quantity.get();
        let held = if order.status == OrderStatus::Pending {
            // Items stored before `held` existed hold 0 for holds made then: saturate.
            item.held.saturating_sub(q)
        } else {
            item.held
        };
        let m = move_stock(
            item,
            item.available.saturating_add(q),
            held,
            None,
            cause.clone(),
            now,
        );
        add_movement(write, effects, m);
    }
}

/// A `Pending` order is paid (`event_id`): its held units are sold. `available` is unchanged
/// (they left it when held); `held` goes down, so each item gets a new version and a ledger
/// entry (delta 0).
pub(crate) fn sell_held(
    order: &OrderRecord,
    items: &Items,
    event_id: &StripeEventId,
    now: Timestamp,
    write: &mut WriteSet,
    effects: &mut Effects,
) {
    let cause = Cause {
        kind: CauseKind::Order,
        stripe_event_id: Some(event_id.clone()),
        order_id: Some(order.order_id.clone()),
        actor: None,
    };
    for line in &order.lines {
        let Some(item) = items.get(&line.product_id) else {
            continue;
        };
        let held = item.held.saturating_sub(line.quantity.get());
        let m = move_stock(item, item.available, held, None, cause.clone(), now);
        add_movement(write, effects, m);
    }
}

pub(crate) fn add_movement(write: &mut WriteSet, effects: &mut Effects, m: Movement) {
    write.items.push(m.update);
    write.ledger.push(m.entry);
    effects.publish.push(m.level);
    effects.deactivate.extend(m.deactivate);
    effects.reactivate.extend(m.reactivate);
}

/// The effects to re-run when an already-applied fact is delivered again: publish the current
/// level of every product of the order, make sure sold-out products' links are off, and refund
/// if a refund is due. All idempotent.
pub fn effects_for_existing(order: &OrderRecord, items: &Items) -> Effects {
    let mut effects = Effects::default();
    for product in order.products() {
        if let Some(item) = items.get(product) {
            effects.publish.push(item.level());
            if item.available == 0 {
                effects.deactivate.extend(Deactivation::of(
                    item,
                    Vec::new(),
                    item.deactivated_links.clone(),
                ));
            } else {
                effects.reactivate.extend(Reactivation::of(item));
            }
        }
    }
    effects.refund = order.refund_request();
    if let (Some(_), Some(pi)) = (&order.hold, &order.payment_intent) {
        let action = |what: &str| IntentAction {
            order_id: order.order_id.clone(),
            payment_intent: pi.clone(),
            idempotency_key: format!("stockbridge-{what}-{}", order.order_id),
        };
        if order.payment == PaymentState::Paid {
            match order.status {
                OrderStatus::Fulfilled => effects.capture = Some(action("capture")),
                OrderStatus::Oversold => effects.cancel = Some(action("cancel")),
                _ => {}
            }
        }
    }
    effects
}

/// The decision for a fact already applied to `order`: nothing to write, its effects re-run.
pub fn already_applied(order: &OrderRecord, items: &Items) -> Decision {
    Decision {
        write: WriteSet::default(),
        effects: effects_for_existing(order, items),
        outcome: Outcome::AlreadyApplied(order.status),
    }
}

/// Applies a completed (paid or held) checkout to stock.
///
/// - Already recorded: nothing is written; effects are re-run.
/// - Every catalog line fits: each is decremented (all or none), the order is recorded
///   `Fulfilled` (paid) or `Pending` (held), products that reach 0 get their links switched off.
/// - Any catalog line is short, or the order names more than [`MAX_PRODUCTS_PER_ORDER`]
///   products: nothing is decremented, the order is recorded `Oversold`, and a paid order is
///   refunded in full.
/// - No line is in the catalog: recorded `Unmatched`; nothing taken, nothing refunded (the products
///   are not stockbridge's to manage). Lines for unknown products in a mixed order are kept in
///   `unmatched` and otherwise ignored.
/// - Paid before an item's management boundary ([`CatalogItem::managed_since`]): that line is
///   history the merchant's count already includes. It is kept in `predating` and never moves
///   stock; an order with only such lines is recorded `Predates` (nothing taken, nothing
///   refunded). When the payment time is only bounded from below ([`PaidAt::NotBefore`]) and the
///   bound is before a boundary, nothing is decided: [`Outcome::PaidTimeUnknown`], no write.
pub fn decide_checkout(
    existing: Option<&OrderRecord>,
    facts: &CheckoutFacts,
    items: &Items,
    now: Timestamp,
) -> Decision {
    if let Some(order) = existing {
        return already_applied(order, items);
    }
    // Taken by a conditional update (`crate::take`) but not recorded yet: record it, take nothing.
    if let Some(recorded) = crate::take::recover(facts, items, now) {
        return recorded;
    }
    let (known, unknown): (Vec<OrderLine>, Vec<OrderLine>) = facts
        .lines
        .iter()
        .cloned()
        .partition(|l| items.contains_key(&l.product_id));
    let Some((known, predating)) = split_at_boundary(known, facts, items) else {
        return Decision {
            write: WriteSet::default(),
            effects: Effects::default(),
            outcome: Outcome::PaidTimeUnknown,
        };
    };
    let mut record = new_record(facts, OrderStatus::Unmatched, known.clone(), unknown, now);
    record.predating = predating;
    let mut write = WriteSet::default();
    let mut effects = Effects::default();
    if known.is_empty() {
        let outcome = if record.predating.is_empty() {
            Outcome::Unmatched
        } else {
            record.status = OrderStatus::Predates;
            Outcome::Predates
        };
        write.order = Some(OrderWrite::Create(record));
        return Decision {
            write,
            effects,
            outcome,
        };
    }

    let shortfalls: Vec<Shortfall> = known
        .iter()
        .filter_map(|l| {
            let item = &items[&l.product_id];
            (item.available < l.quantity.get()).then(|| Shortfall {
                product_id: l.product_id.clone(),
                requested: l.quantity.get(),
                available: item.available,
            })
        })
        .collect();

    if shortfalls.is_empty() && known.len() <= MAX_PRODUCTS_PER_ORDER {
        record.status = match facts.payment {
            PaymentState::Paid => OrderStatus::Fulfilled,
            _ => OrderStatus::Pending,
        };
        for line in &known {
            let item = &items[&line.product_id];
            let cause = Cause {
                kind: CauseKind::Order,
                stripe_event_id: Some(facts.event_id.clone()),
                order_id: Some(facts.order_id.clone()),
                actor: None,
            };
            let held = match record.status {
                OrderStatus::Pending => item.held.saturating_add(line.quantity.get()),
                _ => item.held,
            };
            let m = move_stock(
                item,
                item.available - line.quantity.get(),
                held,
                facts.payment_link.as_ref(),
                cause,
                now,
            );
            add_movement(&mut write, &mut effects, m);
        }
        let outcome = if record.status == OrderStatus::Fulfilled {
            Outcome::Fulfilled
        } else {
            Outcome::Held
        };
        write.order = Some(OrderWrite::Create(record));
        return Decision {
            write,
            effects,
            outcome,
        };
    }

    // Oversold: nothing moves. The decision still depends on every item's version, and a sold-out
    // product's links (including the session's own) are switched off and recorded.
    record.status = OrderStatus::Oversold;
    record.shortfalls = shortfalls.clone();
    for line in &known {
        let item = &items[&line.product_id];
        effects.publish.push(item.level());
        if item.available == 0 {
            // A sale that finds the product at 0 makes sure its links are off: links not yet
            // recorded are switched off and recorded; recorded ones are checked (a late restock
            // switch-on may have landed after the sell-out). A switch reads the link first, so a
            // link already off costs one read and no write, even in a rush of losing buyers.
            let links = sold_out_links(item, facts.payment_link.as_ref());
            effects.deactivate.extend(sold_out_switches(item, &links));
            if links != item.deactivated_links {
                write.items.push(record_links_off(item, links));
                continue;
            }
        }
        // Too many products is refused whatever the levels: no checks then (they would not fit in
        // one transaction either).
        if known.len() <= MAX_PRODUCTS_PER_ORDER {
            write
                .checks
                .push((item.store_id.clone(), item.product_id.clone(), item.version));
        }
    }
    // Only what stockbridge could not deliver goes back: with lines of other products or from
    // before the boundary, those lines ship (and the shipping with them), so the refund is the
    // catalog lines' own total as Stripe charged it.
    if !record.unmatched.is_empty() || !record.predating.is_empty() {
        let amounts: Option<u64> = known
            .iter()
            .map(|l| facts.amounts.get(&l.product_id).copied())
            .sum();
        record.refund_amount = Some(amounts.unwrap_or(0));
    }
    effects.refund = record.refund_request();
    write.order = Some(OrderWrite::Create(record));
    Decision {
        write,
        effects,
        outcome: Outcome::Oversold(shortfalls),
    }
}

/// A new order's record as its first event shows it: these lines, nothing short, refunded or
/// held yet, no line from before a boundary.
pub(crate) fn new_record(
    facts: &CheckoutFacts,
    status: OrderStatus,
    lines: Vec<OrderLine>,
    unmatched: Vec<OrderLine>,
    now: Timestamp,
) -> OrderRecord {
    OrderRecord {
        order_id: facts.order_id.clone(),
        store_id: facts.store_id.clone(),
        status,
        payment: facts.payment,
        lines,
        unmatched,
        shortfalls: Vec::new(),
        payment_intent: facts.payment_intent.clone(),
        payment_link: facts.payment_link.clone(),
        refund_id: None,
        created_by: facts.event_id.clone(),
        last_event: facts.event_id.clone(),
        created_at: now,
        updated_at: now,
        hold: None,
        predating: Vec::new(),
        refund_amount: None,
    }
}

/// Splits an order's catalog lines into those to apply and those paid before their item's
/// management boundary (history). `None` when the payment time is only bounded and the bound
/// falls before a boundary (it cannot be told which side the payment is on).
///
/// Only a payment is a sale: a delayed payment still clearing holds stock whenever its session
/// completed, and becomes a sale when it clears, after the boundary.
fn split_at_boundary(
    known: Vec<OrderLine>,
    facts: &CheckoutFacts,
    items: &Items,
) -> Option<(Vec<OrderLine>, Vec<OrderLine>)> {
    if facts.payment != PaymentState::Paid {
        return Some((known, Vec::new()));
    }
    let starts_after = |l: &OrderLine, t: Timestamp| items[&l.product_id].managed_since > t;
    match facts.paid_at {
        PaidAt::At(t) => Some(known.into_iter().partition(|l| !starts_after(l, t))),
        PaidAt::NotBefore(t) if known.iter().any(|l| starts_after(l, t)) => None,
        PaidAt::NotBefore(_) => Some((known, Vec::new())),
    }
}

/// A delayed payment cleared (`checkout.session.async_payment_succeeded`) for a recorded order.
/// (When no order is recorded yet, the caller applies it as a paid [`decide_checkout`].)
///
/// A held order becomes `Fulfilled`; an oversold one becomes refundable; anything else was
/// already applied.
pub fn decide_payment_succeeded(
    order: &OrderRecord,
    event_id: &StripeEventId,
    items: &Items,
    now: Timestamp,
) -> Decision {
    if order.payment != PaymentState::Awaiting {
        return already_applied(order, items);
    }
    let mut record = order.clone();
    record.payment = PaymentState::Paid;
    record.last_event = event_id.clone();
    record.updated_at = now;
    let mut write = WriteSet::default();
    let mut effects = Effects::default();
    let outcome = match order.status {
        OrderStatus::Pending => {
            record.status = OrderStatus::Fulfilled;
            sell_held(order, items, event_id, now, &mut write, &mut effects);
            Outcome::Confirmed
        }
        OrderStatus::Oversold => Outcome::Oversold(order.shortfalls.clone()),
        other => Outcome::AlreadyApplied(other),
    };
    let after = effects_for_existing(&record, items);
    if effects.publish.is_empty() {
        effects = after;
    } else {
        effects.refund = after.refund;
    }
    write.order = Some(OrderWrite::Update {
        record,
        expected_status: order.status,
        expected_payment: order.payment,
    });
    Decision {
        write,
        effects,
        outcome,
    }
}

/// `checkout.session.async_payment_succeeded`, whatever else arrived first: with no order
/// recorded it is applied as a paid checkout ([`decide_checkout`]); with one, the held order is
/// confirmed or the oversold one made refundable ([`decide_payment_succeeded`]).
pub fn decide_async_success(
    existing: Option<&OrderRecord>,
    facts: &CheckoutFacts,
    items: &Items,
    now: Timestamp,
) -> Decision {
    match existing {
        Some(order) => decide_payment_succeeded(order, &facts.event_id, items, now),
        None => decide_checkout(
            None,
            &CheckoutFacts {
                payment: PaymentState::Paid,
                ..facts.clone()
            },
            items,
            now,
        ),
    }
}

/// A delayed payment failed (`checkout.session.async_payment_failed`).
///
/// - No order yet (the failure overtook `completed`): a `Failed` record is written so the late
///   `completed` holds nothing.
/// - A held order: its stock comes back (all lines), the order becomes `Released`.
/// - Otherwise the payment state is recorded; nothing is refunded (no money arrived).
pub fn decide_payment_failed(
    existing: Option<&OrderRecord>,
    order_id: &OrderId,
    store_id: &StoreId,
    event_id: &StripeEventId,
    items: &Items,
    now: Timestamp,
) -> Decision {
    let Some(order) = existing else {
        let record = OrderRecord {
            order_id: order_id.clone(),
            store_id: store_id.clone(),
            status: OrderStatus::Failed,
            payment: PaymentState::Failed,
            lines: Vec::new(),
            unmatched: Vec::new(),
            shortfalls: Vec::new(),
            payment_intent: None,
            payment_link: None,
            refund_id: None,
            created_by: event_id.clone(),
            last_event: event_id.clone(),
            created_at: now,
            updated_at: now,
            hold: None,
            predating: Vec::new(),
            refund_amount: None,
        };
        return Decision {
            write: WriteSet {
                order: Some(OrderWrite::Create(record)),
                ..WriteSet::default()
            },
            effects: Effects::default(),
            outcome: Outcome::PaymentFailed,
        };
    };
    if order.payment != PaymentState::Awaiting {
        return already_applied(order, items);
    }
    let mut record = order.clone();
    record.payment = PaymentState::Failed;
    record.last_event = event_id.clone();
    record.updated_at = now;
    let mut write = WriteSet::default();
    let mut effects = Effects::default();
    let outcome = if order.status == OrderStatus::Pending {
        record.status = OrderStatus::Released;
        let cause = Cause {
            kind: CauseKind::Release,
            stripe_event_id: Some(event_id.clone()),
            order_id: Some(order.order_id.clone()),
            actor: None,
        };
        return_stock(order, items, &cause, now, &mut write, &mut effects);
        Outcome::Released
    } else {
        Outcome::PaymentFailed
    };
    write.order = Some(OrderWrite::Update {
        record,
        expected_status: order.status,
        expected_payment: order.payment,
    });
    Decision {
        write,
        effects,
        outcome,
    }
}

/// An operator's change to a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockChange {
    /// Set the level to this many units (a restock): the management boundary stays, so an
    /// order paid before it and delivered late still counts.
    Set(u64),
    /// Set the level to a count the merchant just made that already includes every sale paid
    /// before it: the item's management boundary moves to now.
    Recount(u64),
    /// Add (or, negative, remove) units.
    Adjust(i64),
}

/// Why a stock change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockChangeError {
    /// The adjustment would take the level below zero.
    #[error(
        "adjusting {product_id} by {delta} would take its stock below zero (it has {available})"
    )]
    BelowZero {
        /// The product.
        product_id: ProductId,
        /// The requested delta.
        delta: i64,
        /// The current level.
        available: u64,
    },
    /// A count below what pending checkouts hold.
    #[error(
        "{product_id}: {held} units are held by pending checkouts, so on hand cannot be set to {on_hand}; set at least {held}, or wait for the holds to settle"
    )]
    BelowHeld {
        /// The product.
        product_id: ProductId,
        /// The requested count.
        on_hand: u64,
        /// Units held now.
        held: u64,
    },
    /// The adjustment overflows.
    #[error("adjusting {product_id} by {delta} overflows")]
    Overflow {
        /// The product.
        product_id: ProductId,
        /// The requested delta.
        delta: i64,
    },
}

/// An operator sets or adjusts a level. A restock from 0 switches back on the links stockbridge
/// switched off; reaching 0 switches them off. The result is published.
///
/// # Errors
/// [`StockChangeError`] when the change would take the level below zero or overflow.
pub fn decide_stock_change(
    item: &CatalogItem,
    change: StockChange,
    actor: &str,
    now: Timestamp,
) -> Result<Decision, StockChangeError> {
    let (available, kind) = match change {
        // The merchant counts what is on the shelf, held units included: those are still
        // theirs until paid, and come back to `available` if the holds lapse.
        StockChange::Set(n) | StockChange::Recount(n) => {
            let available =
                n.checked_sub(item.held)
                    .ok_or_else(|| StockChangeError::BelowHeld {
                        product_id: item.product_id.clone(),
                        on_hand: n,
                        held: item.held,
                    })?;
            (available, CauseKind::Set)
        }
        StockChange::Adjust(delta) => {
            let new = i128::from(item.available) + i128::from(delta);
            if new < 0 {
                return Err(StockChangeError::BelowZero {
                    product_id: item.product_id.clone(),
                    delta,
                    available: item.available,
                });
            }
            let new = u64::try_from(new).map_err(|_| StockChangeError::Overflow {
                product_id: item.product_id.clone(),
                delta,
            })?;
            (new, CauseKind::Adjust)
        }
    };
    let cause = Cause {
        kind,
        stripe_event_id: None,
        order_id: None,
        actor: Some(actor.to_owned()),
    };
    let mut write = WriteSet::default();
    let mut effects = Effects::default();
    let mut m = move_stock(item, available, item.held, None, cause, now);
    // A recount already includes every sale paid before it: a new management boundary. A
    // restock or an adjustment is relative to what stockbridge tracked: the boundary stays,
    // and an order paid before it that arrives late still takes its unit (or is refunded).
    if matches!(change, StockChange::Recount(_)) {
        m.update.managed_since = now;
    }
    add_movement(&mut write, &mut effects, m);
    Ok(Decision {
        write,
        effects,
        outcome: Outcome::StockChanged,
    })
}

/// A new catalog item and the ledger entry of its first level. An item created at 0 has its
/// links switched off (and recorded) like any sold-out item; its level is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    /// The item to create.
    pub item: CatalogItem,
    /// Its first ledger entry.
    pub entry: LedgerEntry,
    /// Effects after the create.
    pub effects: Effects,
}

/// Creates a catalog item with `stock` units.
///
/// # Errors
/// [`StockChangeError::Overflow`] when `stock` does not fit a ledger delta.
pub fn decide_new_item(
    store_id: StoreId,
    product_id: ProductId,
    name: String,
    stock: u64,
    payment_links: Vec<PaymentLinkId>,
    actor: &str,
    now: Timestamp,
) -> Result<NewItem, StockChangeError> {
    let delta = i64::try_from(stock).map_err(|_| StockChangeError::Overflow {
        product_id: product_id.clone(),
        delta: i64::MAX,
    })?;
    let deactivated_links = if stock == 0 {
        payment_links.clone()
    } else {
        Vec::new()
    };
    let item = CatalogItem {
        store_id,
        product_id,
        name,
        available: stock,
        held: 0,
        version: 1,
        payment_links,
        deactivated_links,
        updated_at: now,
        managed_since: now,
        unrecorded_take: None,
    };
    let entry = LedgerEntry {
        store_id: item.store_id.clone(),
        product_id: item.product_id.clone(),
        version: 1,
        delta,
        level: stock,
        held: 0,
        operation: None,
        cause: Cause {
            kind: CauseKind::Set,
            stripe_event_id: None,
            order_id: None,
            actor: Some(actor.to_owned()),
        },
        at: now,
    };
    let effects = Effects {
        publish: vec![item.level()],
        deactivate: Deactivation::of(&item, item.deactivated_links.clone(), Vec::new())
            .into_iter()
            .collect(),
        ..Effects::default()
    };
    Ok(NewItem {
        item,
        entry,
        effects,
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod boundary_tests;

#[cfg(test)]
mod held_tests;

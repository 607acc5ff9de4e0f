//! A sale decided in the write: the hot path of a flash sale (issue 13 §2).
//!
//! A transaction conditioned on the versions a decision read fails whenever anyone else wrote the
//! item first, and on DynamoDB a transaction also conflicts with every other write in flight on
//! its items, so concurrent orders for one product serialise and burn retries. Most orders in a
//! rush are the same simple shape: one product, paid, and enough stock left that nothing switches.
//! For those, the decision ([`crate::decide_checkout`], unchanged) is carried out as a
//! [`StockTake`], in two writes that never conflict with each other:
//!
//! 1. **The take**: one conditional update of the item, relative to what it holds when the write
//!    lands: `available -= q` if `available >= q + 1` (so the level stays above 0 and no link has
//!    to switch), the item's management boundary and switched-off links are still those the
//!    decision saw, and the item carries no mark of this order yet. It leaves a [`TakeMark`] on the
//!    item: the version, level and held units the take produced.
//! 2. **The record**: the order record and its ledger entry ([`with_take`]), written together
//!    and conditionally (the order must not exist). They are other items, so the write does not
//!    touch the item orders compete for.
//!
//! Exactly once: the mark is removed only after the record exists, and the order is always read
//! before it is decided, so a delivery finds either the record or the mark (the take happened,
//! recording it is what is left: [`recover`]) or neither (nothing happened). Two deliveries
//! cannot both take while the mark is there: the second take finds it. But a delivery's read and
//! its take are two requests: another delivery of the same order can take, record and have its
//! mark removed in between (or a `completed` of the same session can hold its stock). That take
//! is a duplicate: its record is refused (the order exists), and it is given back ([`undo`])
//! before the order is decided again; a delivery that stops before giving it back leaves its
//! mark, which the next delivery finds next to the record and gives back. A take refused by its
//! condition changes nothing and the order is decided again from fresh state, through the
//! transactional path when it sells out or comes short.
//!
//! Everything else (several products, a delayed payment, a sell-out, a restock's switch-on, an
//! oversold order) keeps the one conditional transaction of [`crate::decide`].

use crate::{
    CatalogItem, Cause, CauseKind, CheckoutFacts, Decision, Effects, Items, LedgerEntry, OrderId,
    OrderLine, OrderStatus, OrderWrite, Outcome, PaymentState, ProductId, StoreId, Timestamp,
    WriteSet,
};

/// What a take left on its item until its order is recorded: the item's state right after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TakeMark {
    /// The item version the take produced (the ledger entry's key).
    pub version: u64,
    /// Units available right after the take.
    pub available: u64,
    /// Units held right after the take (a paid take holds nothing: unchanged).
    pub held: u64,
    /// Units the take took.
    pub quantity: u64,
    /// The shard the take took from ([`crate::shard`]); `None`: the item. Its ledger entry goes
    /// under the shard's key, wherever the mark is now (a collect carries marks to the item).
    pub shard: Option<u16>,
}

/// A take to write: one conditional, relative update of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockTake {
    /// The store.
    pub store_id: StoreId,
    /// The product.
    pub product_id: ProductId,
    /// The order taking: its mark must not be on the item yet.
    pub order_id: OrderId,
    /// Units to take; the take needs at least one more unit than this.
    pub quantity: u64,
    /// The management boundary the decision saw: a recount since refuses the take.
    pub managed_since: Timestamp,
    /// When.
    pub at: Timestamp,
    /// Taken from this shard of a spread product, with the spread's epoch as read
    /// ([`crate::shard`]); `None`: from the item.
    pub shard: Option<(u16, u64)>,
}

/// The take that carries out `decision`, when it is the simple shape: a new paid order taking
/// one product, leaving it in stock, with no link to switch and nothing else written. `None`:
/// commit the decision's transaction instead.
pub fn take_of(decision: &Decision) -> Option<StockTake> {
    let Some(OrderWrite::Create(record)) = &decision.write.order else {
        return None;
    };
    let write = &decision.write;
    let effects = &decision.effects;
    let ([update], [entry]) = (write.items.as_slice(), write.ledger.as_slice()) else {
        return None;
    };
    let simple = record.status == OrderStatus::Fulfilled
        // A line from before its item's boundary is history the record keeps: not this shape.
        && record.predating.is_empty()
        && write.checks.is_empty()
        && write.operation.is_none()
        && effects.deactivate.is_empty()
        && effects.reactivate.is_empty()
        && effects.refund.is_none()
        // A sell-out switches links off (and a restock recorded them): the transaction does that.
        && update.available > 0
        && update.expected_deactivated_links.is_empty()
        && update.deactivated_links.is_empty();
    if !simple || entry.cause.kind != CauseKind::Order {
        return None;
    }
    let quantity = u64::try_from(entry.delta.checked_neg()?)
        .ok()
        .filter(|q| *q > 0)?;
    Some(StockTake {
        store_id: update.store_id.clone(),
        product_id: update.product_id.clone(),
        order_id: record.order_id.clone(),
        quantity,
        managed_since: update.managed_since,
        at: update.at,
        shard: None,
    })
}

/// How a decision is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commit {
    /// As a take, then its record ([`take_of`]).
    Take(StockTake),
    /// As the record of a take made earlier ([`recover`]), after which its mark can go.
    Record(StockTake),
    /// As one conditional transaction.
    Transaction,
}

/// How to write `decision`.
pub fn commit_of(decision: &Decision) -> Commit {
    if let Some(take) = take_of(decision) {
        return Commit::Take(take);
    }
    // Only a recovery creates an order with a stock movement and no item write.
    let write = &decision.write;
    if let (Some(OrderWrite::Create(record)), [], [entry], [], None) = (
        &write.order,
        write.items.as_slice(),
        write.ledger.as_slice(),
        write.checks.as_slice(),
        &write.operation,
    ) && let Ok(quantity) = u64::try_from(-entry.delta)
    {
        return Commit::Record(StockTake {
            store_id: entry.store_id.clone(),
            product_id: entry.product_id.clone(),
            order_id: record.order_id.clone(),
            quantity,
            managed_since: Timestamp(0),
            at: entry.at,
            shard: None,
        });
    }
    Commit::Transaction
}

/// `decision` as its take carried it out: the order record and the ledger entry, with the
/// version and levels the take produced (other orders may have taken in between), and no item
/// write (the take was it). The level published is the one the take produced.
pub fn with_take(decision: Decision, mark: TakeMark) -> Decision {
    let Decision {
        mut write,
        mut effects,
        outcome,
    } = decision;
    write.items.clear();
    for entry in &mut write.ledger {
        entry.version = mark.version;
        entry.level = mark.available;
        entry.held = mark.held;
    }
    for level in &mut effects.publish {
        level.version = mark.version;
        level.available = mark.available;
        level.held = mark.held;
    }
    Decision {
        write,
        effects,
        outcome,
    }
}

/// A new order whose take is on its item but not recorded (a crash, or a lost answer, between
/// the take and the record): the decision that records it as the take made it, taking nothing
/// again. `None` when no item carries this order's take.
pub(crate) fn recover(facts: &CheckoutFacts, items: &Items, now: Timestamp) -> Option<Decision> {
    let (item, mark) = items
        .values()
        .find_map(|i| i.unrecorded_take.map(|m| (i, m)))?;
    // The order is the one the take was for: its line is what the take took.
    let quantity = mark.quantity;
    let line = OrderLine {
        product_id: item.product_id.clone(),
        quantity: crate::Quantity::new(quantity).ok()?,
    };
    let unmatched: Vec<OrderLine> = facts
        .lines
        .iter()
        .filter(|l| !items.contains_key(&l.product_id))
        .cloned()
        .collect();
    // A paid take: the record a paid order gets (`facts` may be a delayed payment's success).
    let mut record =
        crate::decide::new_record(facts, OrderStatus::Fulfilled, vec![line], unmatched, now);
    record.payment = PaymentState::Paid;
    let entry = LedgerEntry {
        store_id: item.store_id.clone(),
        product_id: item.product_id.clone(),
        version: mark.version,
        delta: -i64::try_from(quantity).unwrap_or(i64::MAX),
        level: mark.available,
        held: mark.held,
        operation: None,
        cause: Cause {
            kind: CauseKind::Order,
            stripe_event_id: Some(facts.event_id.clone()),
            order_id: Some(facts.order_id.clone()),
            actor: None,
        },
        at: now,
        shard: mark.shard,
    };
    Some(Decision {
        write: WriteSet {
            order: Some(OrderWrite::Create(record)),
            ledger: vec![entry],
            ..WriteSet::default()
        },
        effects: Effects {
            // The item as read: at least as new as the take.
            publish: vec![item.level()],
            ..Effects::default()
        },
        outcome: Outcome::Fulfilled,
    })
}

/// Gives back a take that turned out to be a duplicate: its order was recorded (or held) by
/// another delivery between this delivery's read and its take, so the record refused it, and
/// the units are counted twice until this lands. The decision, committed only while the item
/// still carries the take's mark (and with the mark removed), writes the take's own ledger entry at its version and the give-back
/// as a stock movement of its own, so the ledger still adds up to the level; a product the
/// duplicate had sold out gets its links back.
///
/// Never for a take its order's record names (the ledger entry at `mark.version` is that
/// order's): that take is the sale.
pub fn undo(item: &CatalogItem, order: &OrderId, mark: TakeMark, now: Timestamp) -> Decision {
    let cause = |kind| Cause {
        kind,
        stripe_event_id: None,
        order_id: Some(order.clone()),
        actor: Some("stockbridge: duplicate take".to_owned()),
    };
    let taken = LedgerEntry {
        store_id: item.store_id.clone(),
        product_id: item.product_id.clone(),
        version: mark.version,
        delta: -i64::try_from(mark.quantity).unwrap_or(i64::MAX),
        level: mark.available,
        held: mark.held,
        operation: None,
        cause: cause(CauseKind::Order),
        at: now,
        shard: mark.shard,
    };
    let back = crate::decide::move_stock(
        item,
        item.available.saturating_add(mark.quantity),
        item.held,
        None,
        cause(CauseKind::Release),
        now,
    );
    let mut write = WriteSet {
        ledger: vec![taken],
        ..WriteSet::default()
    };
    let mut effects = Effects::default();
    crate::decide::add_movement(&mut write, &mut effects, back);
    Decision {
        write,
        effects,
        outcome: Outcome::Released,
    }
}

#[cfg(test)]
#[path = "take/tests.rs"]
mod tests;

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

mod movement;
mod operator;
mod write;

pub(crate) use movement::*;
pub use movement::{forget_links_off, record_links_off};
pub use operator::*;
pub use write::*;

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
    if known.is_empty() {
        let outcome = if record.predating.is_empty() {
            Outcome::Unmatched
        } else {
            record.status = OrderStatus::Predates;
            Outcome::Predates
        };
        return Decision {
            write: WriteSet {
                order: Some(OrderWrite::Create(record)),
                ..WriteSet::default()
            },
            effects: Effects::default(),
            outcome,
        };
    }

    let shortfalls = shortfalls_of(&known, items);
    if shortfalls.is_empty() && known.len() <= MAX_PRODUCTS_PER_ORDER {
        return decide_sale(record, &known, facts, items, now);
    }
    decide_oversold(record, &known, shortfalls, facts, items)
}

/// The lines the items cannot fill, with what each has.
fn shortfalls_of(known: &[OrderLine], items: &Items) -> Vec<Shortfall> {
    known
        .iter()
        .filter_map(|l| {
            let item = &items[&l.product_id];
            (item.available < l.quantity.get()).then(|| Shortfall {
                product_id: l.product_id.clone(),
                requested: l.quantity.get(),
                available: item.available,
            })
        })
        .collect()
}

/// Every line filled: taken (paid) or held (a delayed payment), each line a stock movement.
fn decide_sale(
    mut record: OrderRecord,
    known: &[OrderLine],
    facts: &CheckoutFacts,
    items: &Items,
    now: Timestamp,
) -> Decision {
    let mut write = WriteSet::default();
    let mut effects = Effects::default();
    record.status = match facts.payment {
        PaymentState::Paid => OrderStatus::Fulfilled,
        _ => OrderStatus::Pending,
    };
    for line in known {
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
        Outcome::AwaitingPayment
    };
    write.order = Some(OrderWrite::Create(record));
    Decision {
        write,
        effects,
        outcome,
    }
}

/// Oversold: nothing moves. The decision still depends on every item's version, and a sold-out
/// product's links (including the session's own) are switched off and recorded.
fn decide_oversold(
    mut record: OrderRecord,
    known: &[OrderLine],
    shortfalls: Vec<Shortfall>,
    facts: &CheckoutFacts,
    items: &Items,
) -> Decision {
    let mut write = WriteSet::default();
    let mut effects = Effects::default();
    record.status = OrderStatus::Oversold;
    record.shortfalls = shortfalls.clone();
    for line in known {
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
        after_sale: None,
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
        expected_after_sale: order.after_sale_revision(),
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
            after_sale: None,
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
        expected_after_sale: order.after_sale_revision(),
    });
    Decision {
        write,
        effects,
        outcome,
    }
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod boundary_tests;

#[cfg(test)]
mod held_tests;

#[cfg(test)]
mod order_tests;

//! Checkout-API holds: stock reserved before payment (a `Pending` order with [`HoldTerms`]),
//! made a sale when the PaymentIntent is authorised, released when the payment fails or the hold
//! expires. Every transition is conditional on the order's status, so an authorisation racing
//! the sweeper resolves to exactly one outcome.
//!
//! The PaymentIntent's life cycle, as this module follows it:
//! - `amount_capturable_updated` (authorised): a pending hold becomes a sale and is captured. A
//!   hold already released is taken again only when Stripe confirms the PaymentIntent is still
//!   `requires_capture` (the caller asks; an event can be late or replayed).
//! - `payment_failed`: the buyer may try again with the same PaymentIntent, so a pending hold is
//!   released but a later authorisation can still take the stock again.
//! - `canceled`: terminal. A hold in any state but a refused sale becomes [`OrderStatus::Canceled`];
//!   stock still taken goes back; nothing is ever captured afterwards.
//! - A capture Stripe refuses for good: [`OrderStatus::CaptureFailed`], the stock goes back.

use crate::decide::{
    Decision, OrderWrite, Outcome, WriteSet, add_movement, move_stock, return_stock, sell_held,
};
use crate::{
    Cause, CauseKind, CheckoutFacts, Effects, HoldTerms, Items, OrderRecord, OrderStatus,
    PaymentIntentId, PaymentState, Shortfall, StripeEventId, Timestamp, decide_checkout,
    effects_for_existing,
};

/// What a checkout request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldDecision {
    /// The hold already exists (a retry with the same Idempotency-Key): answer with it.
    Existing(Box<OrderRecord>),
    /// Not enough stock: nothing is written; answer 409 with what is available.
    Short(Vec<Shortfall>),
    /// Reserve every line in one transaction.
    Reserve(Box<Decision>),
}

/// Reserves every line of a checkout (all or none) on `terms` (until `terms.expires_at`).
///
/// While an item has Payment Links, pending holds may take at most `share_percent` of its on-hand
/// stock (rounded down): a line beyond that is short, and the shortfall says how much a hold
/// could still take. Links go off only when `available` is 0, and with `share_percent < 100`
/// `available >= on_hand - floor(on_hand * share / 100) >= 1` while anything is on hand, so a
/// hold alone never switches a link off. An item without links keeps nothing back.
pub fn decide_hold(
    existing: Option<&OrderRecord>,
    facts: &CheckoutFacts,
    items: &Items,
    terms: HoldTerms,
    share_percent: u8,
    now: Timestamp,
) -> HoldDecision {
    if let Some(order) = existing {
        return HoldDecision::Existing(Box::new(order.clone()));
    }
    let over_share: Vec<Shortfall> = facts
        .lines
        .iter()
        .filter_map(|l| {
            let item = items.get(&l.product_id)?;
            let holdable = holdable(item, share_percent);
            (l.quantity.get() > holdable).then(|| Shortfall {
                product_id: l.product_id.clone(),
                requested: l.quantity.get(),
                available: holdable,
            })
        })
        .collect();
    if !over_share.is_empty() {
        return HoldDecision::Short(over_share);
    }
    let held = CheckoutFacts {
        payment: PaymentState::Awaiting,
        ..facts.clone()
    };
    let mut decision = decide_checkout(None, &held, items, now);
    match &decision.outcome {
        Outcome::AwaitingPayment => {
            if let Some(OrderWrite::Create(record)) = &mut decision.write.order {
                record.hold = Some(terms);
            }
            HoldDecision::Reserve(Box::new(decision))
        }
        Outcome::Oversold(shortfalls) => HoldDecision::Short(shortfalls.clone()),
        // Unknown products are refused before deciding; treat anything else as short.
        _ => HoldDecision::Short(Vec::new()),
    }
}

/// Sets `item`'s held units to what its pending orders hold (`pending`), `available`
/// unchanged: the repair of a count left wrong by versions that did not keep `held` (during a
/// deploy, old and new functions run side by side). `None` when it is right.
pub fn decide_held_repair(
    item: &crate::CatalogItem,
    pending: u64,
    actor: &str,
    now: Timestamp,
) -> Option<Decision> {
    if item.held == pending {
        return None;
    }
    let cause = Cause {
        kind: CauseKind::Adjust,
        stripe_event_id: None,
        order_id: None,
        actor: Some(actor.to_owned()),
    };
    let mut write = WriteSet::default();
    let mut effects = Effects::default();
    let m = move_stock(item, item.available, pending, None, cause, now);
    add_movement(&mut write, &mut effects, m);
    Some(Decision {
        write,
        effects,
        outcome: Outcome::StockChanged,
    })
}

/// What a new hold may still take of `item`: its available units, and while it has Payment
/// Links no more than brings held units to `share_percent` of on hand.
pub fn holdable(item: &crate::CatalogItem, share_percent: u8) -> u64 {
    if item.payment_links.is_empty() || share_percent >= 100 {
        return item.available;
    }
    let cap = u64::try_from(u128::from(item.on_hand()) * u128::from(share_percent) / 100)
        .unwrap_or(u64::MAX);
    cap.saturating_sub(item.held).min(item.available)
}

/// The hold's PaymentIntent was authorised (`payment_intent.amount_capturable_updated`).
///
/// - Still held: the hold becomes a sale (`Fulfilled`) and the PaymentIntent is captured.
/// - Released (expired and swept, or an earlier payment attempt failed): the stock is taken
///   again if it is all there — then captured — else the order is `Oversold` and the
///   PaymentIntent cancelled, never captured. The caller has confirmed with Stripe that the
///   PaymentIntent is `requires_capture` (a late event for a cancelled one must not take stock).
/// - Already a sale or oversold: already applied (the capture or cancel is re-run, with the
///   same key).
/// - Cancelled, or its capture refused: terminal, nothing is done.
pub fn decide_authorized(
    order: &OrderRecord,
    payment_intent: &PaymentIntentId,
    event_id: &StripeEventId,
    items: &Items,
    now: Timestamp,
) -> Decision {
    let mut record = order.clone();
    record.payment = PaymentState::Paid;
    record.payment_intent = Some(payment_intent.clone());
    record.last_event = event_id.clone();
    record.updated_at = now;
    let mut write = WriteSet::default();
    let mut effects = Effects::default();
    let outcome = match order.status {
        OrderStatus::Canceled | OrderStatus::CaptureFailed => {
            return Decision {
                write: WriteSet::default(),
                effects: Effects::default(),
                outcome: Outcome::AlreadyApplied(order.status),
            };
        }
        OrderStatus::Pending => {
            record.status = OrderStatus::Fulfilled;
            sell_held(order, items, event_id, now, &mut write, &mut effects);
            Outcome::Confirmed
        }
        OrderStatus::Released | OrderStatus::Failed => take_again(
            order,
            &mut record,
            items,
            event_id,
            now,
            &mut write,
            &mut effects,
        ),
        _ if order.payment == PaymentState::Paid => {
            return Decision {
                write: WriteSet::default(),
                effects: effects_for_existing(order, items),
                outcome: Outcome::AlreadyApplied(order.status),
            };
        }
        other => Outcome::AlreadyApplied(other),
    };
    let after = effects_for_existing(&record, items);
    effects.capture = after.capture;
    effects.cancel = after.cancel;
    if effects.publish.is_empty() {
        effects.publish = after.publish;
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

/// A released hold authorised after all: its stock taken again if it is all there (a sale),
/// else the order is oversold (nothing moves; the decision depends on every item's version).
fn take_again(
    order: &OrderRecord,
    record: &mut OrderRecord,
    items: &Items,
    event_id: &StripeEventId,
    now: Timestamp,
    write: &mut WriteSet,
    effects: &mut Effects,
) -> Outcome {
    let shortfalls: Vec<Shortfall> = order
        .lines
        .iter()
        .filter_map(|l| {
            let available = items.get(&l.product_id).map_or(0, |i| i.available);
            (available < l.quantity.get()).then(|| Shortfall {
                product_id: l.product_id.clone(),
                requested: l.quantity.get(),
                available,
            })
        })
        .collect();
    if !shortfalls.is_empty() || order.lines.is_empty() {
        record.status = OrderStatus::Oversold;
        record.shortfalls = shortfalls.clone();
        for line in &order.lines {
            if let Some(item) = items.get(&line.product_id) {
                write
                    .checks
                    .push((item.store_id.clone(), item.product_id.clone(), item.version));
            }
        }
        return Outcome::Oversold(shortfalls);
    }
    record.status = OrderStatus::Fulfilled;
    let cause = Cause {
        kind: CauseKind::Order,
        stripe_event_id: Some(event_id.clone()),
        order_id: Some(order.order_id.clone()),
        actor: None,
    };
    for line in &order.lines {
        let item = &items[&line.product_id];
        let m = move_stock(
            item,
            item.available - line.quantity.get(),
            item.held,
            None,
            cause.clone(),
            now,
        );
        add_movement(write, effects, m);
    }
    Outcome::Fulfilled
}

/// The sweeper: a hold still pending at `expires_at` is released, its stock returned.
/// `None` when there is nothing to do (not a pending hold, or not expired yet).
pub fn decide_hold_expired(order: &OrderRecord, items: &Items, now: Timestamp) -> Option<Decision> {
    let terms = order.hold.as_ref()?;
    if terms.expires_at > now {
        return None;
    }
    decide_hold_released(order, items, "sweeper", now)
}

/// Releases a pending hold now, its stock returned: the sweeper at expiry, or the checkout when
/// Stripe refused to create its PaymentIntent. `None` when it is not a pending hold.
pub fn decide_hold_released(
    order: &OrderRecord,
    items: &Items,
    actor: &str,
    now: Timestamp,
) -> Option<Decision> {
    if order.hold.is_none() || order.status != OrderStatus::Pending {
        return None;
    }
    let cause = released_by(order, actor);
    Some(settle(
        order,
        OrderStatus::Released,
        true,
        &cause,
        items,
        now,
    ))
}

/// `payment_intent.canceled` for a hold: terminal. Stock still taken (a pending hold, or a sale
/// whose capture never happened) goes back; a released or failed hold only records it. An
/// order the cancel came from (`Oversold`: stockbridge cancelled it) or already terminal is
/// already applied.
pub fn decide_hold_canceled(
    order: &OrderRecord,
    event_id: &StripeEventId,
    items: &Items,
    now: Timestamp,
) -> Decision {
    let taken = match order.status {
        OrderStatus::Pending | OrderStatus::Fulfilled => true,
        OrderStatus::Released | OrderStatus::Failed => false,
        _ => {
            return Decision {
                write: WriteSet::default(),
                effects: Effects::default(),
                outcome: Outcome::AlreadyApplied(order.status),
            };
        }
    };
    let cause = Cause {
        kind: CauseKind::Release,
        stripe_event_id: Some(event_id.clone()),
        order_id: Some(order.order_id.clone()),
        actor: None,
    };
    // Units a refund already returned (the merchant's returns policy) are not returned again.
    let taken = taken && !returned_after_sale(order);
    let mut d = settle(order, OrderStatus::Canceled, taken, &cause, items, now);
    if let Some(OrderWrite::Update { record, .. }) = &mut d.write.order {
        record.last_event = event_id.clone();
    }
    d
}

/// Stripe refused for good to capture a hold that became a sale (its authorisation was
/// cancelled or lapsed): the sale cannot be paid, so its stock goes back and the order is
/// `CaptureFailed`. `None` unless it is a sale of a hold.
pub fn decide_capture_refused(
    order: &OrderRecord,
    items: &Items,
    now: Timestamp,
) -> Option<Decision> {
    if order.hold.is_none() || order.status != OrderStatus::Fulfilled {
        return None;
    }
    let cause = released_by(order, "capture-refused");
    Some(settle(
        order,
        OrderStatus::CaptureFailed,
        !returned_after_sale(order),
        &cause,
        items,
        now,
    ))
}

/// Whether a refund or lost dispute already returned the order's units
/// ([`crate::after_sale`]): a cancel or refused capture after it returns nothing more.
fn returned_after_sale(order: &OrderRecord) -> bool {
    order
        .after_sale
        .as_ref()
        .is_some_and(|a| a.returned.is_some())
}

/// Stock returned from `order` by stockbridge itself (`actor`), not by a Stripe event.
fn released_by(order: &OrderRecord, actor: &str) -> Cause {
    Cause {
        kind: CauseKind::Release,
        stripe_event_id: None,
        order_id: Some(order.order_id.clone()),
        actor: Some(actor.into()),
    }
}

/// Moves a hold to `status`, returning its stock when `taken`; conditional on the status and
/// payment it was decided from.
fn settle(
    order: &OrderRecord,
    status: OrderStatus,
    taken: bool,
    cause: &Cause,
    items: &Items,
    now: Timestamp,
) -> Decision {
    let mut record = order.clone();
    record.status = status;
    record.updated_at = now;
    let mut write = WriteSet::default();
    let mut effects = Effects::default();
    if taken {
        return_stock(order, items, cause, now, &mut write, &mut effects);
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
        outcome: match status {
            OrderStatus::Canceled => Outcome::Canceled,
            OrderStatus::CaptureFailed => Outcome::CaptureRefused,
            _ => Outcome::Released,
        },
    }
}

#[cfg(test)]
mod tests;

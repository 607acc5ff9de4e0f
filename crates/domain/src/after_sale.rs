//! After the sale: the merchant refunds an order in the Dashboard (`charge.refunded`) or loses a
//! dispute over it (`charge.dispute.closed`).
//!
//! Contract of [`decide_after_sale`]:
//! - Every such fact about a recorded order is **recorded on the order** ([`AfterSale`]):
//!   the amount refunded so far, whether in full, how a dispute closed. A fact that changes
//!   nothing (a redelivery, an older refund total arriving late) writes nothing.
//! - The order's units **go back to stock only when the store says so** ([`ReturnsPolicy`],
//!   per store, both off by default): on a refund in full, or on a lost dispute. Only an order
//!   that took stock (`Fulfilled`, paid) returns units, only the lines it took (never lines of
//!   other products, never lines paid before their item was managed), each with a ledger entry,
//!   in the same transaction as the record, and **at most once** whatever arrives after (a
//!   refund and a lost dispute of the same order, duplicates, both in any order).
//! - A partial refund returns nothing: Stripe does not say which units it is for (it may be a
//!   goodwill discount, shipping, one of several units); a person adjusts the stock.
//! - Only a fact that changes the record can return units: switching the policy on later does
//!   not return the units of refunds recorded before (a redelivery of an old refund changes
//!   nothing).
//! - Every update of an order is conditional on the record's [`AfterSale::revision`] it read
//!   ([`crate::OrderWrite::Update`]), so two deliveries never both return the units and no other
//!   update of the order overwrites what a refund recorded.
//!
//! Refunds stockbridge makes itself are of oversold orders, which took no stock: their
//! `charge.refunded` is recorded and returns nothing.

use crate::{
    Cause, CauseKind, Decision, Effects, Items, OrderRecord, OrderStatus, OrderWrite, Outcome,
    PaymentState, StripeEventId, Timestamp, WriteSet, return_stock,
};

/// What happened to a paid order after the sale, as recorded on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AfterSale {
    /// Minor units refunded so far: the highest `amount_refunded` Stripe reported (its events
    /// carry the running total and may arrive out of order).
    pub refunded: u64,
    /// Whether the payment is refunded in full (Stripe's `refunded`).
    pub refunded_in_full: bool,
    /// How a dispute closed (`lost`, `won`, `warning_closed`, ...), if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispute: Option<String>,
    /// The order's units went back to stock, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned: Option<Returned>,
    /// Counts the changes of this record: every update of the order is conditional on it.
    pub revision: u32,
    /// The Stripe event that changed it last.
    pub last_event: Option<StripeEventId>,
    /// When it changed last.
    pub updated_at: Timestamp,
}

/// The units of an order went back to stock.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Returned {
    /// A refund in full or a lost dispute.
    pub cause: ReturnCause,
    /// The Stripe event.
    pub event: StripeEventId,
    /// When.
    pub at: Timestamp,
}

/// Why an order's units went back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnCause {
    /// The payment was refunded in full.
    Refund,
    /// A dispute was lost.
    DisputeLost,
}

/// What Stripe reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reversal {
    /// `charge.refunded`: the running total refunded and whether that is all of it.
    Refund {
        /// `amount_refunded`, minor units.
        amount_refunded: u64,
        /// `refunded`.
        in_full: bool,
    },
    /// `charge.dispute.closed` with its `status`.
    DisputeClosed {
        /// `lost`, `won`, `warning_closed`, ...
        status: String,
    },
}

/// The fact: which event, what it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalFacts {
    /// The Stripe event.
    pub event_id: StripeEventId,
    /// What it reports.
    pub reversal: Reversal,
}

/// Whether a store's orders return their units after the sale (`stockbridge store returns`).
/// Both off by default: whether refunded goods come back to the shelf is the merchant's call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReturnsPolicy {
    /// A refund in full returns the order's units.
    #[serde(default)]
    pub refunds: bool,
    /// A lost dispute returns the order's units.
    #[serde(default)]
    pub lost_disputes: bool,
}

/// The detail of `stockbridge.order_refunded`: stockbridge refunded an order it could not fill,
/// so the merchant can tell the buyer why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderRefunded {
    /// The order (a Checkout Session id): the consumer's key to drop a repeat (published at
    /// least once).
    pub order_id: crate::OrderId,
    /// The store.
    pub store_id: crate::StoreId,
    /// The refunded PaymentIntent.
    pub payment_intent: crate::PaymentIntentId,
    /// Stripe's refund.
    pub refund_id: crate::RefundId,
    /// Minor units refunded; `null`: the whole payment.
    pub amount: Option<u64>,
    /// Why: `oversold` (the only reason stockbridge refunds).
    pub reason: String,
    /// The order's lines of stockbridge's products: none of them was delivered.
    pub products: Vec<crate::OrderLine>,
    /// Each product that was short: units ordered, units there were.
    pub shortfalls: Vec<crate::Shortfall>,
}

impl OrderRecord {
    /// What `stockbridge.order_refunded` says about this order's refund.
    pub fn refund_notice(&self, refund_id: &crate::RefundId) -> Option<OrderRefunded> {
        Some(OrderRefunded {
            order_id: self.order_id.clone(),
            store_id: self.store_id.clone(),
            payment_intent: self.payment_intent.clone()?,
            refund_id: refund_id.clone(),
            amount: self.refund_amount,
            reason: "oversold".into(),
            products: self.lines.clone(),
            shortfalls: self.shortfalls.clone(),
        })
    }

    /// The revision of the after-sale record every update of the order is conditional on.
    pub fn after_sale_revision(&self) -> u32 {
        self.after_sale.as_ref().map_or(0, |a| a.revision)
    }
}

/// Records a refund or a closed dispute on `order` and, when `policy` says so and the order
/// took stock, returns its units (see the module doc).
pub fn decide_after_sale(
    order: &OrderRecord,
    facts: &ReversalFacts,
    policy: ReturnsPolicy,
    items: &Items,
    now: Timestamp,
) -> Decision {
    let before = order.after_sale.clone().unwrap_or_default();
    let mut after = before.clone();
    match &facts.reversal {
        Reversal::Refund {
            amount_refunded,
            in_full,
        } => {
            // Running totals: an older one arriving late never lowers what was recorded.
            after.refunded = after.refunded.max(*amount_refunded);
            after.refunded_in_full |= *in_full;
        }
        // A dispute closes once; the first close recorded stands, except that an inquiry
        // closed without escalating (`warning_closed`) may be followed by a real dispute.
        Reversal::DisputeClosed { status } => match after.dispute.as_deref() {
            Some(d) if !d.starts_with("warning") => {}
            _ => after.dispute = Some(status.clone()),
        },
    }
    if after == before {
        return unchanged(order, items);
    }
    let cause = return_cause(order, &after, policy);
    after.revision = before.revision + 1;
    after.last_event = Some(facts.event_id.clone());
    after.updated_at = now;
    let mut record = order.clone();
    let mut write = WriteSet::default();
    let mut effects = Effects::default();
    if let Some(cause) = cause {
        after.returned = Some(Returned {
            cause,
            event: facts.event_id.clone(),
            at: now,
        });
        let ledger_cause = Cause {
            kind: CauseKind::Return,
            stripe_event_id: Some(facts.event_id.clone()),
            order_id: Some(order.order_id.clone()),
            actor: None,
        };
        // Lines whose item was recounted (or imported) after the sale: the count already
        // includes whatever came back. Never returned.
        let mut returning = order.clone();
        returning.lines.retain(|l| {
            items
                .get(&l.product_id)
                .is_none_or(|i| i.managed_since <= order.created_at)
        });
        return_stock(
            &returning,
            items,
            &ledger_cause,
            now,
            &mut write,
            &mut effects,
        );
    }
    record.after_sale = Some(after);
    record.updated_at = now;
    write.order = Some(OrderWrite::Update {
        record,
        expected_status: order.status,
        expected_payment: order.payment,
        expected_after_sale: before.revision,
    });
    Decision {
        write,
        effects,
        outcome: match cause {
            Some(cause) => Outcome::Returned(cause),
            None => Outcome::AfterSaleRecorded,
        },
    }
}

/// Whether the units go back now: only once, only for an order that took them, only as the
/// store's policy says.
fn return_cause(
    order: &OrderRecord,
    after: &AfterSale,
    policy: ReturnsPolicy,
) -> Option<ReturnCause> {
    let took_stock = order.status == OrderStatus::Fulfilled
        && order.payment == PaymentState::Paid
        && !order.lines.is_empty();
    if after.returned.is_some() || !took_stock {
        return None;
    }
    if policy.refunds && after.refunded_in_full {
        Some(ReturnCause::Refund)
    } else if policy.lost_disputes && after.dispute.as_deref() == Some("lost") {
        Some(ReturnCause::DisputeLost)
    } else {
        None
    }
}

/// Nothing new: no write. The levels and link switches are made sure of again (a crash after
/// the commit of a return may have left them), never a payment action: a hold's capture is
/// long done, and an oversold order's refund is the order's own business.
fn unchanged(order: &OrderRecord, items: &Items) -> Decision {
    let mut effects = crate::effects_for_existing(order, items);
    effects.refund = None;
    effects.capture = None;
    effects.cancel = None;
    Decision {
        write: WriteSet::default(),
        effects,
        outcome: Outcome::AlreadyApplied(order.status),
    }
}

#[cfg(test)]
mod tests;

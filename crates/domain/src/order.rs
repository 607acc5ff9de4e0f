//! Orders: what a customer bought, and where the order is in its life cycle.

use std::collections::BTreeMap;

use crate::{
    OrderId, PaymentIntentId, PaymentLinkId, ProductId, Quantity, RefundId, RefundRequest, StoreId,
    StripeEventId, Timestamp,
};

/// One product and how many of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderLine {
    /// The product.
    pub product_id: ProductId,
    /// How many units.
    pub quantity: Quantity,
}

/// Where an order stands. Every paid order ends `Fulfilled` or `Oversold` (and refunded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Stock is held for an order whose payment has not cleared yet (delayed payment methods).
    Pending,
    /// Stock was taken for the order.
    Fulfilled,
    /// Stock could not cover the order: nothing was taken; a paid order is refunded in full.
    Oversold,
    /// None of the order's products are in the catalog: nothing was taken, nothing refunded.
    Unmatched,
    /// The held stock was returned because the payment failed.
    Released,
    /// Paid before stockbridge began managing its products' stock (their import, backfill or
    /// last `stock set --recount`): the merchant's count already included it. Nothing taken, nothing
    /// refunded.
    Predates,
    /// The payment failed before any stock was held; nothing will be.
    Failed,
    /// A checkout hold whose PaymentIntent was cancelled (by stockbridge, a person or Stripe):
    /// terminal. Its stock went back if it was still taken; a late authorisation never takes
    /// it again and nothing is ever captured.
    Canceled,
    /// A checkout hold that became a sale whose capture Stripe refused for good (the
    /// authorisation was cancelled or lapsed): its stock went back, the order is parked
    /// (`capture:{hold}`) for a person.
    CaptureFailed,
}

impl OrderStatus {
    /// The status as stored and shown (`pending`, `fulfilled`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Fulfilled => "fulfilled",
            Self::Oversold => "oversold",
            Self::Unmatched => "unmatched",
            Self::Released => "released",
            Self::Predates => "predates",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::CaptureFailed => "capture_failed",
        }
    }

    /// Parses a stored status.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "fulfilled" => Self::Fulfilled,
            "oversold" => Self::Oversold,
            "unmatched" => Self::Unmatched,
            "released" => Self::Released,
            "predates" => Self::Predates,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            "capture_failed" => Self::CaptureFailed,
            _ => return None,
        })
    }
}

/// Whether the customer's money has arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    /// Paid (`payment_status = paid` or `async_payment_succeeded`).
    Paid,
    /// A delayed payment method has not cleared yet.
    Awaiting,
    /// The delayed payment failed.
    Failed,
}

impl PaymentState {
    /// The state as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paid => "paid",
            Self::Awaiting => "awaiting",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored state.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "paid" => Self::Paid,
            "awaiting" => Self::Awaiting,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// A line the catalog could not cover.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shortfall {
    /// The product.
    pub product_id: ProductId,
    /// Units ordered.
    pub requested: u64,
    /// Units available when the order was decided.
    pub available: u64,
}

/// The stored record of an order, keyed by its Checkout Session id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderRecord {
    /// The Checkout Session id.
    pub order_id: OrderId,
    /// The store whose stock the order draws on.
    pub store_id: StoreId,
    /// Life-cycle status.
    pub status: OrderStatus,
    /// Payment state.
    pub payment: PaymentState,
    /// Lines for catalog products (merged per product).
    pub lines: Vec<OrderLine>,
    /// Lines for products the catalog does not know; never decremented, never refunded.
    pub unmatched: Vec<OrderLine>,
    /// Why an oversold order could not be filled.
    pub shortfalls: Vec<Shortfall>,
    /// The PaymentIntent to refund if the order is oversold.
    pub payment_intent: Option<PaymentIntentId>,
    /// The Payment Link the session came from, if any.
    pub payment_link: Option<PaymentLinkId>,
    /// The refund, once made.
    pub refund_id: Option<RefundId>,
    /// The Stripe event that created the record.
    pub created_by: StripeEventId,
    /// The Stripe event that changed it last.
    pub last_event: StripeEventId,
    /// When the record was created.
    pub created_at: Timestamp,
    /// When the record changed last.
    pub updated_at: Timestamp,
    /// Set for a checkout-API hold: stock reserved before payment, the PaymentIntent captured
    /// only once the hold became a sale (cancelled, never refunded, when it cannot).
    #[serde(default)]
    pub hold: Option<HoldTerms>,
    /// Catalog lines paid before their item's management boundary: history the merchant's count
    /// already included. Never decremented, never refunded (the merchant ships those lines).
    #[serde(default)]
    pub predating: Vec<OrderLine>,
    /// What to refund of a short order, in the payment's minor units, when only part of the
    /// payment is stockbridge's to return: the undelivered catalog lines of an order that also
    /// has lines of other products or from before the boundary (those ship, and so does the
    /// shipping). `None`: in full. `Some(0)`: nothing automatic (a line's amount was unknown);
    /// logged for a person.
    #[serde(default)]
    pub refund_amount: Option<u64>,
    /// What happened after the sale: the merchant's refunds, a closed dispute, and whether the
    /// units went back ([`crate::after_sale`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_sale: Option<crate::after_sale::AfterSale>,
}

/// The terms of a checkout-API hold.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct HoldTerms {
    /// When the reserved stock goes back if the payment has not been authorised.
    pub expires_at: Timestamp,
    /// What the PaymentIntent is created for, fixed when the stock is held: a retry with the
    /// same key sends Stripe identical parameters even if a price changed meanwhile. `None`
    /// for holds made before these were stored (a retry then prices from the catalog).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<u64>,
    /// The currency of `amount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The buyer's e-mail (the PaymentIntent's `receipt_email`, the per-e-mail caps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The client's hashed address, so a failed authorisation counts against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The share of a buyer's purchase limit this hold took (`CHECKOUT_UNITS_PER_EMAIL`): given
    /// back while the hold is neither pending nor a sale, taken again if it becomes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowance: Option<Allowance>,
}

/// Units a hold counted against a buyer's purchase limit, and where (a counter window).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Allowance {
    /// The counter's key (`units:email:{hash}`).
    pub key: String,
    /// Its window's start (ms).
    pub start: Timestamp,
    /// Its window's length (s).
    pub seconds: u32,
    /// Units counted.
    pub units: u32,
}

impl OrderStatus {
    /// Whether a hold in this state counts against its buyer's purchase limit: held, or sold.
    pub fn counts_against_limit(self) -> bool {
        matches!(self, Self::Pending | Self::Fulfilled)
    }
}

impl OrderRecord {
    /// True when the order must be refunded and has not been yet: oversold, paid, with a
    /// PaymentIntent to refund.
    pub fn refund_due(&self) -> bool {
        self.hold.is_none()
            && self.refund_amount != Some(0)
            // Recorded before partial refunds existed: never in full (those lines shipped).
            && (self.predating.is_empty() || self.refund_amount.is_some())
            && self.status == OrderStatus::Oversold
            && self.payment == PaymentState::Paid
            && self.refund_id.is_none()
            && self.payment_intent.is_some()
    }

    /// The idempotency key for this order's refund: derived from the order alone, so no retry,
    /// redelivery or reconciler run can ever refund twice.
    pub fn refund_idempotency_key(&self) -> String {
        refund_idempotency_key(&self.order_id)
    }

    /// The refund this order is due, if any: in full, or the part
    /// [`Self::refund_amount`] says, with the order's own idempotency key.
    pub fn refund_request(&self) -> Option<RefundRequest> {
        let payment_intent = self.payment_intent.clone().filter(|_| self.refund_due())?;
        Some(RefundRequest {
            order_id: self.order_id.clone(),
            payment_intent,
            amount: self.refund_amount,
            idempotency_key: self.refund_idempotency_key(),
        })
    }

    /// True when nothing more will happen to the order, so a retention period may delete it:
    /// a final state with no refund due, no delayed payment still clearing and nothing left
    /// for a person. A pending hold or delayed payment (`Pending`, or a Checkout order whose
    /// payment is still `Awaiting`), a capture Stripe refused (parked for a person) and an
    /// oversold order whose refund is not recorded are never closed: deleting them would lose
    /// work.
    pub fn is_closed(&self) -> bool {
        // A delayed payment still clearing may succeed weeks later (some vouchers take 60
        // days): the order must be there to decide it. A released or cancelled checkout hold is
        // closed although its PaymentIntent may still be confirmed: an authorisation for a hold
        // no longer on record is ignored, never captured, and Stripe lets it lapse.
        if self.payment == PaymentState::Awaiting && self.hold.is_none() {
            return false;
        }
        match self.status {
            OrderStatus::Pending | OrderStatus::CaptureFailed => false,
            OrderStatus::Fulfilled => self.payment == PaymentState::Paid,
            OrderStatus::Oversold => !self.refund_due(),
            OrderStatus::Unmatched
            | OrderStatus::Released
            | OrderStatus::Predates
            | OrderStatus::Failed
            | OrderStatus::Canceled => true,
        }
    }

    /// Every product the order names (matched lines only).
    pub fn products(&self) -> impl Iterator<Item = &ProductId> {
        self.lines.iter().map(|l| &l.product_id)
    }
}

/// The refund idempotency key of an order.
pub fn refund_idempotency_key(order_id: &OrderId) -> String {
    format!("stockbridge-refund-{order_id}")
}

/// Why lines could not be merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinesError {
    /// The same product's quantities add up to more than a quantity can hold.
    #[error("the quantities of {0} add up to more than {max}", max = u32::MAX)]
    Overflow(ProductId),
}

/// Merges lines of the same product (a session may list one product twice), keeping the order
/// deterministic (sorted by product id).
///
/// # Errors
/// [`LinesError::Overflow`] when one product's quantities add up past `u32::MAX`.
pub fn merge_lines(
    lines: impl IntoIterator<Item = OrderLine>,
) -> Result<Vec<OrderLine>, LinesError> {
    let mut merged: BTreeMap<ProductId, Quantity> = BTreeMap::new();
    for line in lines {
        match merged.get_mut(&line.product_id) {
            Some(q) => {
                *q = q
                    .checked_add(line.quantity)
                    .ok_or_else(|| LinesError::Overflow(line.product_id.clone()))?;
            }
            None => {
                merged.insert(line.product_id, line.quantity);
            }
        }
    }
    Ok(merged
        .into_iter()
        .map(|(product_id, quantity)| OrderLine {
            product_id,
            quantity,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(p: &str, q: u64) -> OrderLine {
        OrderLine {
            product_id: ProductId::parse(p).unwrap(),
            quantity: Quantity::new(q).unwrap(),
        }
    }

    #[test]
    fn lines_of_the_same_product_are_merged_and_sorted() {
        let merged =
            merge_lines([line("prod_b", 1), line("prod_a", 2), line("prod_b", 3)]).unwrap();
        assert_eq!(merged, vec![line("prod_a", 2), line("prod_b", 4)]);
    }

    #[test]
    fn merging_refuses_an_overflowing_total() {
        let max = u64::from(u32::MAX);
        assert!(matches!(
            merge_lines([line("prod_a", max), line("prod_a", 1)]),
            Err(LinesError::Overflow(_))
        ));
    }

    #[test]
    fn a_status_round_trips_through_its_stored_form() {
        for s in [
            OrderStatus::Pending,
            OrderStatus::Fulfilled,
            OrderStatus::Oversold,
            OrderStatus::Unmatched,
            OrderStatus::Released,
            OrderStatus::Predates,
            OrderStatus::Failed,
            OrderStatus::Canceled,
            OrderStatus::CaptureFailed,
        ] {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        for p in [
            PaymentState::Paid,
            PaymentState::Awaiting,
            PaymentState::Failed,
        ] {
            assert_eq!(PaymentState::parse(p.as_str()), Some(p));
        }
    }

    fn order(status: OrderStatus, payment: PaymentState) -> OrderRecord {
        let event = StripeEventId::parse("evt_1").unwrap();
        OrderRecord {
            order_id: OrderId::parse("cs_1").unwrap(),
            store_id: StoreId::parse("shop").unwrap(),
            status,
            payment,
            lines: vec![line("prod_a", 1)],
            unmatched: vec![],
            shortfalls: vec![],
            payment_intent: Some(PaymentIntentId::parse("pi_1").unwrap()),
            payment_link: None,
            refund_id: None,
            created_by: event.clone(),
            last_event: event,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            hold: None,
            predating: vec![],
            refund_amount: None,
            after_sale: None,
        }
    }

    #[test]
    fn only_an_order_with_nothing_left_to_do_is_closed() {
        use OrderStatus as S;
        use PaymentState as P;
        for open in [
            order(S::Pending, P::Awaiting),
            order(S::Fulfilled, P::Awaiting),
            order(S::CaptureFailed, P::Paid),
            // Paid and short: its refund is still to be made.
            order(S::Oversold, P::Paid),
            // Short while its voucher is still clearing: decided when it clears.
            order(S::Oversold, P::Awaiting),
        ] {
            assert!(!open.is_closed(), "{:?}/{:?}", open.status, open.payment);
        }
        let mut refunded = order(S::Oversold, P::Paid);
        refunded.refund_id = Some(RefundId::parse("re_1").unwrap());
        let mut expired_hold = order(S::Released, P::Awaiting);
        expired_hold.hold = Some(HoldTerms::default());
        for closed in [
            expired_hold,
            order(S::Fulfilled, P::Paid),
            refunded,
            order(S::Unmatched, P::Paid),
            order(S::Released, P::Failed),
            order(S::Predates, P::Paid),
            order(S::Failed, P::Failed),
            order(S::Canceled, P::Failed),
        ] {
            assert!(
                closed.is_closed(),
                "{:?}/{:?}",
                closed.status,
                closed.payment
            );
        }
    }
}

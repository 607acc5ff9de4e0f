//! Checkout-API holds: stock reserved before payment (a `Pending` order with [`HoldTerms`]),
//! made a sale when the PaymentIntent is authorised, released when the payment fails or the hold
//! expires. Every transition is conditional on the order's status, so an authorisation racing
//! the sweeper resolves to exactly one outcome.

use crate::decide::{
    Decision, OrderWrite, Outcome, WriteSet, add_movement, move_stock, return_stock,
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

/// Reserves every line of a checkout (all or none) until `expires_at`.
pub fn decide_hold(
    existing: Option<&OrderRecord>,
    facts: &CheckoutFacts,
    items: &Items,
    expires_at: Timestamp,
    now: Timestamp,
) -> HoldDecision {
    if let Some(order) = existing {
        return HoldDecision::Existing(Box::new(order.clone()));
    }
    let held = CheckoutFacts {
        payment: PaymentState::Awaiting,
        ..facts.clone()
    };
    let mut decision = decide_checkout(None, &held, items, now);
    match &decision.outcome {
        Outcome::Held => {
            if let Some(OrderWrite::Create(record)) = &mut decision.write.order {
                record.hold = Some(HoldTerms { expires_at });
            }
            HoldDecision::Reserve(Box::new(decision))
        }
        Outcome::Oversold(shortfalls) => HoldDecision::Short(shortfalls.clone()),
        // Unknown products are refused before deciding; treat anything else as short.
        _ => HoldDecision::Short(Vec::new()),
    }
}

/// The hold's PaymentIntent was authorised (`payment_intent.amount_capturable_updated`).
///
/// - Still held: the hold becomes a sale (`Fulfilled`) and the PaymentIntent is captured.
/// - Released (expired and swept, or an earlier payment attempt failed): the stock is taken
///   again if it is all there — then captured — else the order is `Oversold` and the
///   PaymentIntent cancelled, never captured.
/// - Already a sale or oversold: already applied (the capture or cancel is re-run, with the
///   same key).
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
        OrderStatus::Pending => {
            record.status = OrderStatus::Fulfilled;
            Outcome::Confirmed
        }
        OrderStatus::Released | OrderStatus::Failed => {
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
            if shortfalls.is_empty() && !order.lines.is_empty() {
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
                        None,
                        cause.clone(),
                        now,
                    );
                    add_movement(&mut write, &mut effects, m);
                }
                Outcome::Fulfilled
            } else {
                record.status = OrderStatus::Oversold;
                record.shortfalls = shortfalls.clone();
                for line in &order.lines {
                    if let Some(item) = items.get(&line.product_id) {
                        write.checks.push((
                            item.store_id.clone(),
                            item.product_id.clone(),
                            item.version,
                        ));
                    }
                }
                Outcome::Oversold(shortfalls)
            }
        }
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
    });
    Decision {
        write,
        effects,
        outcome,
    }
}

/// The sweeper: a hold still pending at `expires_at` is released, its stock returned.
/// `None` when there is nothing to do (not a pending hold, or not expired yet).
pub fn decide_hold_expired(order: &OrderRecord, items: &Items, now: Timestamp) -> Option<Decision> {
    let terms = order.hold?;
    if order.status != OrderStatus::Pending || terms.expires_at > now {
        return None;
    }
    let mut record = order.clone();
    record.status = OrderStatus::Released;
    record.updated_at = now;
    let mut write = WriteSet::default();
    let mut effects = Effects::default();
    let cause = Cause {
        kind: CauseKind::Release,
        stripe_event_id: None,
        order_id: Some(order.order_id.clone()),
        actor: Some("sweeper".into()),
    };
    return_stock(order, items, &cause, now, &mut write, &mut effects);
    write.order = Some(OrderWrite::Update {
        record,
        expected_status: order.status,
        expected_payment: order.payment,
    });
    Some(Decision {
        write,
        effects,
        outcome: Outcome::Released,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CatalogItem, OrderId, OrderLine, ProductId, Quantity, StoreId};

    fn item(available: u64) -> CatalogItem {
        CatalogItem {
            store_id: StoreId::parse("s1").unwrap(),
            product_id: ProductId::parse("tee").unwrap(),
            name: "Tee".into(),
            available,
            version: 3,
            payment_links: vec![],
            deactivated_links: vec![],
            updated_at: Timestamp(0),
            managed_since: Timestamp(0),
        }
    }

    fn items(available: u64) -> Items {
        [(ProductId::parse("tee").unwrap(), item(available))]
            .into_iter()
            .collect()
    }

    fn facts(q: u64) -> CheckoutFacts {
        CheckoutFacts {
            order_id: OrderId::parse("hold_1").unwrap(),
            store_id: StoreId::parse("s1").unwrap(),
            lines: vec![OrderLine {
                product_id: ProductId::parse("tee").unwrap(),
                quantity: Quantity::new(q).unwrap(),
            }],
            payment: PaymentState::Awaiting,
            payment_intent: None,
            payment_link: None,
            event_id: StripeEventId::parse("api-hold_1").unwrap(),
            paid_at: crate::PaidAt::At(Timestamp(0)),
            amounts: std::collections::BTreeMap::new(),
        }
    }

    fn held(q: u64, available: u64) -> OrderRecord {
        let HoldDecision::Reserve(d) = decide_hold(
            None,
            &facts(q),
            &items(available),
            Timestamp(900),
            Timestamp(0),
        ) else {
            panic!("reserved")
        };
        let Some(OrderWrite::Create(r)) = d.write.order else {
            panic!("created")
        };
        r
    }

    fn pi() -> PaymentIntentId {
        PaymentIntentId::parse("pi_1").unwrap()
    }

    fn evt() -> StripeEventId {
        StripeEventId::parse("evt_1").unwrap()
    }

    #[test]
    fn a_hold_reserves_all_lines_or_answers_what_is_short() {
        let HoldDecision::Reserve(d) =
            decide_hold(None, &facts(2), &items(5), Timestamp(900), Timestamp(0))
        else {
            panic!()
        };
        assert_eq!(d.write.items[0].available, 3);
        let Some(OrderWrite::Create(r)) = &d.write.order else {
            panic!()
        };
        assert_eq!(
            (r.status, r.hold),
            (
                OrderStatus::Pending,
                Some(HoldTerms {
                    expires_at: Timestamp(900)
                })
            )
        );
        assert!(d.effects.capture.is_none() && d.effects.refund.is_none());

        let HoldDecision::Short(s) =
            decide_hold(None, &facts(6), &items(5), Timestamp(900), Timestamp(0))
        else {
            panic!()
        };
        assert_eq!((s[0].requested, s[0].available), (6, 5));
        let existing = held(2, 5);
        assert_eq!(
            decide_hold(
                Some(&existing),
                &facts(2),
                &items(3),
                Timestamp(900),
                Timestamp(0)
            ),
            HoldDecision::Existing(Box::new(existing))
        );
    }

    #[test]
    fn an_authorised_hold_becomes_a_sale_and_is_captured_once_per_key() {
        let hold = held(2, 5);
        let d = decide_authorized(&hold, &pi(), &evt(), &items(3), Timestamp(10));
        assert_eq!(d.outcome, Outcome::Confirmed);
        assert!(d.write.items.is_empty(), "the stock was taken by the hold");
        let capture = d.effects.capture.clone().unwrap();
        assert_eq!(capture.idempotency_key, "stockbridge-capture-hold_1");
        assert!(d.effects.cancel.is_none() && d.effects.refund.is_none());
        // The duplicate event: nothing written, the same capture (same key) re-run.
        let Some(OrderWrite::Update { record, .. }) = d.write.order else {
            panic!()
        };
        let again = decide_authorized(&record, &pi(), &evt(), &items(3), Timestamp(11));
        assert!(again.write.is_empty());
        assert_eq!(again.effects.capture, Some(capture));
    }

    #[test]
    fn an_expired_hold_is_released_and_a_late_authorisation_is_cancelled_when_stock_is_gone() {
        let hold = held(2, 2);
        assert!(
            decide_hold_expired(&hold, &items(0), Timestamp(899)).is_none(),
            "not yet"
        );
        let d = decide_hold_expired(&hold, &items(0), Timestamp(900)).unwrap();
        assert_eq!(d.write.items[0].available, 2);
        let Some(OrderWrite::Update {
            record: released,
            expected_status,
            ..
        }) = d.write.order
        else {
            panic!()
        };
        assert_eq!(
            (released.status, expected_status),
            (OrderStatus::Released, OrderStatus::Pending)
        );
        assert!(decide_hold_expired(&released, &items(2), Timestamp(901)).is_none());

        // Sold elsewhere meanwhile: the late authorisation is cancelled, never captured.
        let late = decide_authorized(&released, &pi(), &evt(), &items(1), Timestamp(950));
        assert!(matches!(late.outcome, Outcome::Oversold(_)));
        assert!(late.effects.capture.is_none() && late.effects.refund.is_none());
        assert_eq!(
            late.effects.cancel.unwrap().idempotency_key,
            "stockbridge-cancel-hold_1"
        );
        assert!(late.write.items.is_empty());

        // Still there: taken again and captured.
        let back = decide_authorized(&released, &pi(), &evt(), &items(4), Timestamp(950));
        assert_eq!(back.outcome, Outcome::Fulfilled);
        assert_eq!(back.write.items[0].available, 2);
        assert!(back.effects.capture.is_some());
    }
}

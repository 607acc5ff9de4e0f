//! The after-sale rule, without mocks: an order and a refund or dispute in, a decision out.

use proptest::prelude::*;

use super::*;
use crate::decide::tests::{NOW, apply, created, facts, item, items, pid};
use crate::{OrderStatus, decide_checkout};

const ALL_ON: ReturnsPolicy = ReturnsPolicy {
    refunds: true,
    lost_disputes: true,
};

fn sold(available: u64, q: u64) -> (OrderRecord, Items) {
    let mut stock = items(&[item("a", available, 0)]);
    let d = decide_checkout(None, &facts(&[("a", q)], PaymentState::Paid), &stock, NOW);
    assert!(apply(&mut stock, &d));
    (created(&d).clone(), stock)
}

fn refund(event: &str, amount: u64, in_full: bool) -> ReversalFacts {
    ReversalFacts {
        event_id: StripeEventId::parse(event).unwrap(),
        reversal: Reversal::Refund {
            amount_refunded: amount,
            in_full,
        },
    }
}

fn dispute(event: &str, status: &str) -> ReversalFacts {
    ReversalFacts {
        event_id: StripeEventId::parse(event).unwrap(),
        reversal: Reversal::DisputeClosed {
            status: status.into(),
        },
    }
}

fn updated(d: &Decision) -> OrderRecord {
    match &d.write.order {
        Some(OrderWrite::Update { record, .. }) => record.clone(),
        other => panic!("expected an update, got {other:?}"),
    }
}

#[test]
fn a_refund_in_full_returns_the_units_with_a_ledger_entry_when_the_store_says_so() {
    let (order, stock) = sold(5, 2);
    let d = decide_after_sale(&order, &refund("evt_r", 2000, true), ALL_ON, &stock, NOW);
    assert_eq!(d.outcome, Outcome::Returned(ReturnCause::Refund));
    assert_eq!(d.write.items[0].available, 5);
    let entry = &d.write.ledger[0];
    assert_eq!((entry.delta, entry.level), (2, 5));
    assert_eq!(entry.cause.kind, CauseKind::Return);
    assert_eq!(entry.cause.order_id.as_ref(), Some(&order.order_id));
    let after = updated(&d).after_sale.unwrap();
    assert_eq!(
        (after.refunded, after.refunded_in_full, after.revision),
        (2000, true, 1)
    );
    assert_eq!(after.returned.unwrap().cause, ReturnCause::Refund);
    assert!(matches!(
        d.write.order,
        Some(OrderWrite::Update {
            expected_after_sale: 0,
            ..
        })
    ));
    assert_eq!(d.effects.publish[0].available, 5);
}

#[test]
fn by_default_a_refund_is_recorded_and_no_unit_moves() {
    let (order, stock) = sold(5, 2);
    let d = decide_after_sale(
        &order,
        &refund("evt_r", 2000, true),
        ReturnsPolicy::default(),
        &stock,
        NOW,
    );
    assert_eq!(d.outcome, Outcome::AfterSaleRecorded);
    assert!(d.write.items.is_empty() && d.write.ledger.is_empty());
    assert!(updated(&d).after_sale.unwrap().returned.is_none());
}

#[test]
fn a_partial_refund_is_recorded_without_returning_units_and_the_rest_returns_them() {
    let (order, mut stock) = sold(5, 2);
    let d = decide_after_sale(&order, &refund("evt_1", 500, false), ALL_ON, &stock, NOW);
    assert_eq!(d.outcome, Outcome::AfterSaleRecorded);
    assert!(d.write.items.is_empty());
    let order = updated(&d);
    // The running total of an older event arriving late changes nothing.
    let late = decide_after_sale(&order, &refund("evt_0", 200, false), ALL_ON, &stock, NOW);
    assert!(late.write.is_empty());
    let d = decide_after_sale(&order, &refund("evt_2", 2000, true), ALL_ON, &stock, NOW);
    assert_eq!(d.outcome, Outcome::Returned(ReturnCause::Refund));
    assert!(matches!(
        d.write.order,
        Some(OrderWrite::Update {
            expected_after_sale: 1,
            ..
        })
    ));
    assert!(apply(&mut stock, &d));
    assert_eq!(stock[&pid("a")].available, 5);
}

#[test]
fn only_a_lost_dispute_returns_units_and_only_when_the_store_says_so() {
    let (order, stock) = sold(5, 2);
    let won = decide_after_sale(&order, &dispute("evt_d", "won"), ALL_ON, &stock, NOW);
    assert_eq!(won.outcome, Outcome::AfterSaleRecorded);
    assert_eq!(
        updated(&won).after_sale.unwrap().dispute.as_deref(),
        Some("won")
    );
    let refunds_only = ReturnsPolicy {
        refunds: true,
        lost_disputes: false,
    };
    let lost = decide_after_sale(&order, &dispute("evt_d", "lost"), refunds_only, &stock, NOW);
    assert_eq!(lost.outcome, Outcome::AfterSaleRecorded);
    let lost = decide_after_sale(&order, &dispute("evt_d", "lost"), ALL_ON, &stock, NOW);
    assert_eq!(lost.outcome, Outcome::Returned(ReturnCause::DisputeLost));
}

#[test]
fn an_order_that_took_no_stock_returns_nothing() {
    // Oversold: stockbridge refunded it itself; its charge.refunded is only recorded.
    let (order, stock) = sold(1, 2);
    assert_eq!(order.status, OrderStatus::Oversold);
    let d = decide_after_sale(&order, &refund("evt_r", 2000, true), ALL_ON, &stock, NOW);
    assert_eq!(d.outcome, Outcome::AfterSaleRecorded);
    assert!(d.write.items.is_empty() && d.write.ledger.is_empty());
}

#[test]
fn switching_the_policy_on_later_does_not_return_the_units_of_an_earlier_refund() {
    let (order, stock) = sold(5, 2);
    let off = decide_after_sale(
        &order,
        &refund("evt_r", 2000, true),
        ReturnsPolicy::default(),
        &stock,
        NOW,
    );
    let order = updated(&off);
    let again = decide_after_sale(&order, &refund("evt_r", 2000, true), ALL_ON, &stock, NOW);
    assert!(again.write.is_empty());
    assert_eq!(
        again.outcome,
        Outcome::AlreadyApplied(OrderStatus::Fulfilled)
    );
}

#[test]
fn a_restock_from_zero_by_a_return_switches_the_links_back_on() {
    let (order, stock) = sold(2, 2);
    assert_eq!(stock[&pid("a")].available, 0);
    let d = decide_after_sale(&order, &refund("evt_r", 2000, true), ALL_ON, &stock, NOW);
    assert_eq!(d.effects.reactivate.len(), 1);
}

/// What the facts can be, for the property: refunds, and one dispute's close (a dispute closes
/// once; its event may be delivered again).
fn any_facts() -> impl Strategy<Value = Vec<ReversalFacts>> {
    let status = prop_oneof![Just("lost"), Just("won"), Just("warning_closed")];
    (
        status,
        proptest::collection::vec((any::<bool>(), 0u64..3000, any::<bool>()), 1..12),
    )
        .prop_map(|(status, facts)| {
            facts
                .into_iter()
                .map(|(is_refund, a, full)| {
                    if is_refund {
                        refund("evt_r", a, full)
                    } else {
                        dispute("evt_d", status)
                    }
                })
                .collect()
        })
}

proptest! {
    /// Refunds and disputes in any order, each delivered any number of times, decided against
    /// the record as it stands: the units go back at most once, and exactly once when a refund
    /// in full or a lost dispute is among them (the store returns both).
    #[test]
    fn units_go_back_at_most_once_whatever_arrives(facts in any_facts()) {
        let (mut order, mut stock) = sold(5, 2);
        let mut returns = 0;
        for f in &facts {
            let d = decide_after_sale(&order, f, ALL_ON, &stock, NOW);
            prop_assert!(apply(&mut stock, &d));
            if let Some(OrderWrite::Update { record, expected_after_sale, .. }) = &d.write.order {
                prop_assert_eq!(*expected_after_sale, order.after_sale_revision());
                order = record.clone();
            }
            if matches!(d.outcome, Outcome::Returned(_)) {
                returns += 1;
            }
        }
        let due = facts.iter().any(|f| match &f.reversal {
            Reversal::Refund { in_full, .. } => *in_full,
            Reversal::DisputeClosed { status } => status == "lost",
        });
        prop_assert_eq!(returns, usize::from(due));
        prop_assert_eq!(stock[&pid("a")].available, if due { 5 } else { 3 });
    }
}

#[test]
fn a_cancel_or_refused_capture_of_a_hold_after_a_return_returns_nothing_more() {
    let (mut order, stock) = sold(5, 2);
    order.hold = Some(crate::HoldTerms::default());
    let d = decide_after_sale(&order, &refund("evt_r", 2000, true), ALL_ON, &stock, NOW);
    let mut stock2 = stock.clone();
    assert!(apply(&mut stock2, &d));
    let order = updated(&d);
    let canceled = crate::decide_hold_canceled(
        &order,
        &StripeEventId::parse("evt_c").unwrap(),
        &stock2,
        NOW,
    );
    assert!(canceled.write.items.is_empty() && canceled.write.ledger.is_empty());
    let refused = crate::decide_capture_refused(&order, &stock2, NOW).unwrap();
    assert!(refused.write.items.is_empty() && refused.write.ledger.is_empty());
}

#[test]
fn a_line_recounted_after_the_sale_is_not_returned() {
    let (order, mut stock) = sold(5, 2);
    stock.get_mut(&pid("a")).unwrap().managed_since = Timestamp(NOW.0 + 1);
    let d = decide_after_sale(
        &order,
        &refund("evt_r", 2000, true),
        ALL_ON,
        &stock,
        Timestamp(NOW.0 + 2),
    );
    assert_eq!(d.outcome, Outcome::Returned(ReturnCause::Refund));
    assert!(d.write.items.is_empty() && d.write.ledger.is_empty());
}

#[test]
fn a_dispute_lost_after_an_inquiry_closed_returns_the_units() {
    let (order, stock) = sold(5, 2);
    let inquiry = decide_after_sale(
        &order,
        &dispute("evt_w", "warning_closed"),
        ALL_ON,
        &stock,
        NOW,
    );
    let order = updated(&inquiry);
    let lost = decide_after_sale(&order, &dispute("evt_l", "lost"), ALL_ON, &stock, NOW);
    assert_eq!(lost.outcome, Outcome::Returned(ReturnCause::DisputeLost));
    let won_then_lost = decide_after_sale(
        &updated(&lost),
        &dispute("evt_x", "won"),
        ALL_ON,
        &stock,
        NOW,
    );
    assert!(won_then_lost.write.is_empty());
}

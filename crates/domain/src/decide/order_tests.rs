//! Orders of delayed payments in any order, partial refunds of mixed orders, and forgetting
//! switched-off links.

use proptest::prelude::*;

use super::tests::{NOW, apply, created, facts, item, items, link, pid};
use super::*;

/// A model event for the ordering property.
#[derive(Debug, Clone, Copy)]
enum Ev {
    CompletedUnpaid,
    Succeeded,
    Failed,
}

proptest! {
    /// A delayed-payment order's events in any order, each delivered up to three times: stock is
    /// taken exactly once if the payment succeeds and never if it fails.
    #[test]
    fn delayed_payment_events_in_any_order_move_stock_at_most_once(
        succeed in any::<bool>(),
        order in proptest::sample::subsequence(vec![0usize, 1, 2, 3, 4, 5], 6).prop_shuffle(),
    ) {
        let kinds = if succeed { [Ev::CompletedUnpaid, Ev::Succeeded] } else { [Ev::CompletedUnpaid, Ev::Failed] };
        let deliveries: Vec<Ev> = order.iter().map(|i| kinds[i % 2]).collect();
        let mut stock = items(&[item("a", 5, 0)]);
        let mut record: Option<OrderRecord> = None;
        let f = facts(&[("a", 2)], PaymentState::Awaiting);
        for ev in deliveries {
            let d = match ev {
                Ev::CompletedUnpaid => decide_checkout(record.as_ref(), &f, &stock, NOW),
                Ev::Succeeded => decide_async_success(record.as_ref(), &f, &stock, NOW),
                Ev::Failed => decide_payment_failed(record.as_ref(), &f.order_id, &f.store_id, &f.event_id, &stock, NOW),
            };
            prop_assert!(apply(&mut stock, &d));
            match d.write.order {
                Some(OrderWrite::Create(r)) | Some(OrderWrite::Update { record: r, .. }) => record = Some(r),
                None => {}
            }
        }
        let r = record.expect("some event recorded the order");
        let available = stock[&pid("a")].available;
        if succeed {
            prop_assert_eq!(r.status, OrderStatus::Fulfilled);
            prop_assert_eq!(available, 3);
        } else {
            prop_assert!(matches!(r.status, OrderStatus::Released | OrderStatus::Failed));
            prop_assert_eq!(available, 5);
        }
    }
}

#[test]
fn a_short_mixed_order_refunds_only_its_catalog_lines_and_keeps_the_shipping() {
    // b is another system's product: its line ships, and so does the shipping.
    let stock = items(&[item("a", 0, 1)]);
    let facts = CheckoutFacts {
        amounts: [(pid("a"), 2_500), (pid("b"), 4_000)].into_iter().collect(),
        ..facts(&[("a", 1), ("b", 1)], PaymentState::Paid)
    };
    let d = decide_checkout(None, &facts, &stock, NOW);
    assert!(matches!(d.outcome, Outcome::Oversold(_)));
    assert_eq!(created(&d).refund_amount, Some(2_500), "kept for a retry");
    assert_eq!(d.effects.refund.expect("a refund").amount, Some(2_500));
}

#[test]
fn a_short_order_of_catalog_lines_only_is_refunded_in_full() {
    let stock = items(&[item("a", 0, 1)]);
    let facts = CheckoutFacts {
        amounts: [(pid("a"), 2_500)].into_iter().collect(),
        ..facts(&[("a", 1)], PaymentState::Paid)
    };
    let d = decide_checkout(None, &facts, &stock, NOW);
    assert_eq!(
        d.effects.refund.expect("a refund").amount,
        None,
        "in full, shipping too"
    );
}

#[test]
fn a_short_mixed_order_with_an_unknown_line_amount_refunds_nothing_automatically() {
    let stock = items(&[item("a", 0, 1)]);
    let d = decide_checkout(
        None,
        &facts(&[("a", 1), ("b", 1)], PaymentState::Paid),
        &stock,
        NOW,
    );
    assert!(d.effects.refund.is_none());
    assert_eq!(created(&d).refund_amount, Some(0));
}

#[test]
fn forgetting_links_keeps_the_others_and_changes_nothing_when_none_is_recorded() {
    let mut it = item("a", 0, 3);
    it.deactivated_links = vec![link("plink_a"), link("plink_b")];
    let u = forget_links_off(&it, &[link("plink_a")]).expect("one forgotten");
    assert_eq!(u.deactivated_links, vec![link("plink_b")]);
    assert_eq!((u.expected_version, u.version), (3, 3), "no stock change");
    assert_eq!(u.expected_deactivated_links, it.deactivated_links);
    assert!(forget_links_off(&it, &[link("plink_other")]).is_none());
}

//! The management boundary: an order paid before stockbridge began managing an item's stock
//! (its import, backfill or last absolute set) is history the merchant's count already includes.

use super::tests::{NOW, created, facts, item, items, link, pid};
use super::*;

const BOUNDARY: Timestamp = Timestamp(NOW.0 - 60_000);

fn managed(product: &str, available: u64, since: Timestamp) -> CatalogItem {
    CatalogItem {
        managed_since: since,
        ..item(product, available, 4)
    }
}

fn paid_at(lines: &[(&str, u64)], at: PaidAt) -> CheckoutFacts {
    CheckoutFacts {
        paid_at: at,
        ..facts(lines, PaymentState::Paid)
    }
}

#[test]
fn an_order_paid_before_the_boundary_moves_no_stock_and_is_never_refunded() {
    // GIVEN a product imported with 0 units (all sold before stockbridge)
    let stock = items(&[managed("a", 0, BOUNDARY)]);
    // WHEN an order paid a second before the import arrives late
    let early = PaidAt::At(Timestamp(BOUNDARY.0 - 1_000));
    let d = decide_checkout(None, &paid_at(&[("a", 1)], early), &stock, NOW);
    // THEN it is recorded as history: nothing written to the item, no refund, no link touched
    assert_eq!(d.outcome, Outcome::Predates);
    let record = created(&d);
    assert_eq!(record.status, OrderStatus::Predates);
    assert!(record.lines.is_empty());
    assert_eq!(record.predating[0].product_id, pid("a"));
    assert!(!record.refund_due());
    assert!(d.write.items.is_empty() && d.write.ledger.is_empty());
    assert_eq!(d.effects, Effects::default());
}

#[test]
fn a_redelivered_predating_order_still_moves_nothing() {
    let stock = items(&[managed("a", 0, BOUNDARY)]);
    let first = decide_checkout(
        None,
        &paid_at(&[("a", 1)], PaidAt::At(Timestamp(0))),
        &stock,
        NOW,
    );
    let again = decide_checkout(
        Some(created(&first)),
        &paid_at(&[("a", 1)], PaidAt::At(NOW)),
        &stock,
        NOW,
    );
    assert_eq!(
        again.outcome,
        Outcome::AlreadyApplied(OrderStatus::Predates)
    );
    assert!(again.write.is_empty());
    assert!(again.effects.refund.is_none() && again.effects.deactivate.is_empty());
}

#[test]
fn a_session_opened_before_the_boundary_but_paid_after_it_is_a_new_sale() {
    let stock = items(&[managed("a", 2, BOUNDARY)]);
    let d = decide_checkout(
        None,
        &paid_at(&[("a", 1)], PaidAt::At(BOUNDARY)),
        &stock,
        NOW,
    );
    assert_eq!(d.outcome, Outcome::Fulfilled);
    assert_eq!(d.write.items[0].available, 1);
}

#[test]
fn an_order_applies_only_the_lines_paid_after_their_own_item_boundary() {
    let stock = items(&[managed("a", 5, Timestamp(0)), managed("b", 5, BOUNDARY)]);
    let before = PaidAt::At(Timestamp(BOUNDARY.0 - 1));
    let d = decide_checkout(None, &paid_at(&[("a", 2), ("b", 3)], before), &stock, NOW);
    assert_eq!(d.outcome, Outcome::Fulfilled);
    assert_eq!(d.write.items.len(), 1, "only a's stock moves");
    assert_eq!(d.write.items[0].product_id, pid("a"));
    let record = created(&d);
    assert_eq!(record.predating.len(), 1);
    assert_eq!(record.predating[0].product_id, pid("b"));
}

#[test]
fn a_short_order_with_predating_lines_refunds_only_the_lines_not_delivered() {
    // The merchant ships the predating line; refunding the whole payment would give it away.
    let stock = items(&[managed("a", 0, Timestamp(0)), managed("b", 5, BOUNDARY)]);
    let before = PaidAt::At(Timestamp(BOUNDARY.0 - 1));
    let facts = CheckoutFacts {
        amounts: [(pid("a"), 1_200), (pid("b"), 3_000)].into_iter().collect(),
        ..paid_at(&[("a", 1), ("b", 1)], before)
    };
    let d = decide_checkout(None, &facts, &stock, NOW);
    assert!(matches!(d.outcome, Outcome::Oversold(_)));
    assert_eq!(d.effects.refund.expect("a refund").amount, Some(1_200));
}

#[test]
fn a_payment_time_known_only_as_a_lower_bound_before_the_boundary_decides_nothing() {
    let stock = items(&[managed("a", 0, BOUNDARY)]);
    let bound = PaidAt::NotBefore(Timestamp(BOUNDARY.0 - 1_000));
    let d = decide_checkout(None, &paid_at(&[("a", 1)], bound), &stock, NOW);
    assert_eq!(d.outcome, Outcome::PaidTimeUnknown);
    assert!(
        d.write.is_empty(),
        "no record: the event, which knows the time, decides"
    );
    assert_eq!(d.effects, Effects::default());
}

#[test]
fn a_lower_bound_after_the_boundary_is_a_new_sale() {
    let stock = items(&[managed("a", 2, BOUNDARY)]);
    let d = decide_checkout(
        None,
        &paid_at(&[("a", 1)], PaidAt::NotBefore(BOUNDARY)),
        &stock,
        NOW,
    );
    assert_eq!(d.outcome, Outcome::Fulfilled);
}

#[test]
fn a_delayed_payment_completed_before_the_boundary_still_holds_stock() {
    // Not paid yet: it becomes a sale when it clears, after the boundary.
    let stock = items(&[managed("a", 2, BOUNDARY)]);
    let d = decide_checkout(
        None,
        &CheckoutFacts {
            paid_at: PaidAt::At(Timestamp(0)),
            ..facts(&[("a", 1)], PaymentState::Awaiting)
        },
        &stock,
        NOW,
    );
    assert_eq!(d.outcome, Outcome::AwaitingPayment);
}

#[test]
fn a_recount_moves_the_boundary_and_a_restock_or_adjustment_keeps_it() {
    let it = managed("a", 3, BOUNDARY);
    let recount = decide_stock_change(&it, StockChange::Recount(7), "cli", NOW).unwrap();
    assert_eq!(recount.write.items[0].managed_since, NOW);
    assert_eq!(recount.write.items[0].available, 7);
    let set = decide_stock_change(&it, StockChange::Set(7), "cli", NOW).unwrap();
    assert_eq!(set.write.items[0].managed_since, BOUNDARY);
    let adjust = decide_stock_change(&it, StockChange::Adjust(2), "cli", NOW).unwrap();
    assert_eq!(adjust.write.items[0].managed_since, BOUNDARY);
    let sale = decide_checkout(
        None,
        &paid_at(&[("a", 1)], PaidAt::At(NOW)),
        &items(&[it]),
        NOW,
    );
    assert_eq!(sale.write.items[0].managed_since, BOUNDARY);
}

#[test]
fn a_new_item_is_managed_from_its_creation() {
    let new = decide_new_item(
        StoreId::parse("s").unwrap(),
        pid("a"),
        "A".into(),
        2,
        vec![link("plink_a")],
        "import",
        NOW,
    )
    .unwrap();
    assert_eq!(new.item.managed_since, NOW);
}

#[test]
fn an_order_recorded_before_partial_refunds_with_predating_lines_is_not_refunded_in_full() {
    let stock = items(&[managed("a", 0, Timestamp(0)), managed("b", 5, BOUNDARY)]);
    let before = PaidAt::At(Timestamp(BOUNDARY.0 - 1));
    let d = decide_checkout(None, &paid_at(&[("a", 1), ("b", 1)], before), &stock, NOW);
    let mut legacy = created(&d).clone();
    legacy.refund_amount = None; // as stored by the earlier version
    assert!(!legacy.refund_due());
}

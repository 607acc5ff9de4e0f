//! Held stock kept apart: units a pending order holds leave `available` for `held`, are sold
//! from `held` when paid and come back from it when not; `stock set` counts what is on hand.

use super::tests::{NOW, created, facts, item, items};
use super::*;

fn apply(stock: &mut Items, d: &Decision) {
    for u in &d.write.items {
        let i = stock.get_mut(&u.product_id).unwrap();
        (i.available, i.held, i.version) = (u.available, u.held, u.version);
    }
}

fn level(stock: &Items) -> (u64, u64) {
    let i = stock.values().next().unwrap();
    (i.available, i.held)
}

#[test]
fn a_recount_while_units_are_held_never_creates_phantom_stock() {
    let mut stock = items(&[item("a", 3, 1)]);
    let hold = decide_checkout(
        None,
        &facts(&[("a", 3)], PaymentState::Awaiting),
        &stock,
        NOW,
    );
    apply(&mut stock, &hold);
    assert_eq!(level(&stock), (0, 3));
    // The merchant counts 3 on the shelf: the 3 held units are among them.
    let set = decide_stock_change(
        &stock[&crate::ProductId::parse("a").unwrap()],
        StockChange::Set(3),
        "op",
        NOW,
    )
    .unwrap();
    apply(&mut stock, &set);
    assert_eq!(level(&stock), (0, 3));
    // The payment fails: the units come back once, 3 in all (not 6).
    let record = created(&hold).clone();
    let failed = decide_payment_failed(
        Some(&record),
        &record.order_id,
        &record.store_id,
        &StripeEventId::parse("evt_f").unwrap(),
        &stock,
        NOW,
    );
    apply(&mut stock, &failed);
    assert_eq!(level(&stock), (3, 0));
}

#[test]
fn a_paid_hold_is_sold_from_held_and_on_hand_cannot_be_set_below_held() {
    let mut stock = items(&[item("a", 5, 1)]);
    let hold = decide_checkout(
        None,
        &facts(&[("a", 2)], PaymentState::Awaiting),
        &stock,
        NOW,
    );
    apply(&mut stock, &hold);
    assert_eq!(level(&stock), (3, 2));
    let a = crate::ProductId::parse("a").unwrap();
    assert!(matches!(
        decide_stock_change(&stock[&a], StockChange::Set(1), "op", NOW),
        Err(StockChangeError::BelowHeld {
            on_hand: 1,
            held: 2,
            ..
        })
    ));
    let set = decide_stock_change(&stock[&a], StockChange::Set(4), "op", NOW).unwrap();
    apply(&mut stock, &set);
    assert_eq!(level(&stock), (2, 2), "on hand 4, of which 2 held");
    let record = created(&hold).clone();
    let paid = decide_payment_succeeded(
        &record,
        &StripeEventId::parse("evt_p").unwrap(),
        &stock,
        NOW,
    );
    apply(&mut stock, &paid);
    assert_eq!(level(&stock), (2, 0));
    assert_eq!(paid.write.ledger[0].delta, 0, "available did not move");
    // A held item sold out for Payment Links stays so while its units are held.
    assert_eq!(paid.effects.publish[0].held, 0);
}

#[test]
fn items_stored_before_held_existed_release_into_available_without_going_below_zero() {
    // An old item: a hold made by an earlier version took 2, held reads 0.
    let mut stock = items(&[item("a", 1, 1)]);
    let old_hold = decide_checkout(
        None,
        &facts(&[("a", 2)], PaymentState::Awaiting),
        &items(&[item("a", 3, 0)]),
        NOW,
    );
    let record = created(&old_hold).clone();
    let failed = decide_payment_failed(
        Some(&record),
        &record.order_id,
        &record.store_id,
        &StripeEventId::parse("evt_f").unwrap(),
        &stock,
        NOW,
    );
    apply(&mut stock, &failed);
    assert_eq!(level(&stock), (3, 0));
}

#[test]
fn holds_take_at_most_their_share_of_an_item_with_links_so_links_stay_on() {
    let mut with_links = item("a", 10, 1);
    with_links.payment_links = vec![crate::PaymentLinkId::parse("plink_a").unwrap()];
    let mut stock = items(&[with_links]);
    let terms = crate::HoldTerms::default();
    let hold = |stock: &Items, q: u64| {
        crate::decide_hold(
            None,
            &facts(&[("a", q)], PaymentState::Awaiting),
            stock,
            terms.clone(),
            50,
            NOW,
        )
    };
    let crate::HoldDecision::Short(s) = hold(&stock, 6) else {
        panic!("over the share")
    };
    assert_eq!((s[0].requested, s[0].available), (6, 5));
    let crate::HoldDecision::Reserve(d) = hold(&stock, 5) else {
        panic!("within the share")
    };
    apply(&mut stock, &d);
    assert_eq!(level(&stock), (5, 5));
    assert!(d.effects.deactivate.is_empty(), "links stay on");
    assert!(matches!(hold(&stock, 1), crate::HoldDecision::Short(_)));
    // One unit on hand: holds may take none of it (rounded down), link buyers keep it.
    let mut one = item("a", 1, 1);
    one.payment_links = vec![crate::PaymentLinkId::parse("plink_a").unwrap()];
    assert_eq!(crate::holdable(&one, 50), 0);
    assert_eq!(crate::holdable(&one, 100), 1);
    // No links: nothing to keep back.
    let mut unlinked = item("a", 7, 1);
    unlinked.payment_links.clear();
    assert_eq!(crate::holdable(&unlinked, 50), 7);
}

//! Tests of the inventory rules, without mocks: state in, decision out.

use proptest::prelude::*;

use super::*;
use crate::{PaymentLinkId, Quantity};

pub(crate) const NOW: Timestamp = Timestamp(1_700_000_000_000);

pub(crate) fn pid(s: &str) -> ProductId {
    ProductId::parse(s).unwrap()
}

pub(crate) fn link(s: &str) -> PaymentLinkId {
    PaymentLinkId::parse(s).unwrap()
}

pub(crate) fn item(product: &str, available: u64, version: u64) -> CatalogItem {
    CatalogItem {
        store_id: StoreId::parse("store_1").unwrap(),
        product_id: pid(product),
        name: product.to_owned(),
        available,
        held: 0,
        version,
        payment_links: vec![link(&format!("plink_{product}"))],
        deactivated_links: Vec::new(),
        updated_at: Timestamp(0),
        managed_since: Timestamp(0),
        unrecorded_take: None,
        spread: None,
        low_stock: None,
    }
}

pub(crate) fn items(list: &[CatalogItem]) -> Items {
    list.iter()
        .map(|i| (i.product_id.clone(), i.clone()))
        .collect()
}

pub(crate) fn facts(lines: &[(&str, u64)], payment: PaymentState) -> CheckoutFacts {
    CheckoutFacts {
        order_id: OrderId::parse("cs_test_1").unwrap(),
        store_id: StoreId::parse("store_1").unwrap(),
        lines: lines
            .iter()
            .map(|(p, q)| OrderLine {
                product_id: pid(p),
                quantity: Quantity::new(*q).unwrap(),
            })
            .collect(),
        payment,
        payment_intent: Some(PaymentIntentId::parse("pi_1").unwrap()),
        payment_link: Some(link("plink_session")),
        event_id: StripeEventId::parse("evt_1").unwrap(),
        paid_at: crate::PaidAt::At(Timestamp(0)),
        amounts: std::collections::BTreeMap::new(),
    }
}

pub(crate) fn created(d: &Decision) -> &OrderRecord {
    match &d.write.order {
        Some(OrderWrite::Create(r)) => r,
        other => panic!("expected a created order, got {other:?}"),
    }
}

#[test]
fn a_paid_order_that_fits_takes_stock_and_records_the_order_fulfilled() {
    let stock = items(&[item("a", 5, 7)]);
    let d = decide_checkout(None, &facts(&[("a", 2)], PaymentState::Paid), &stock, NOW);
    assert_eq!(d.outcome, Outcome::Fulfilled);
    assert_eq!(created(&d).status, OrderStatus::Fulfilled);
    assert_eq!(d.write.items.len(), 1);
    let u = &d.write.items[0];
    assert_eq!((u.expected_version, u.available, u.version), (7, 3, 8));
    assert_eq!(d.write.ledger[0].delta, -2);
    assert_eq!(d.write.ledger[0].level, 3);
    assert_eq!(
        d.write.ledger[0].cause.order_id.as_ref().unwrap().as_str(),
        "cs_test_1"
    );
    assert_eq!(d.effects.publish[0].available, 3);
    assert_eq!(d.effects.publish[0].version, 8);
    assert!(d.effects.deactivate.is_empty());
    assert!(d.effects.refund.is_none());
}

#[test]
fn the_last_unit_sold_switches_off_the_product_links_and_the_session_link() {
    let stock = items(&[item("a", 2, 1)]);
    let d = decide_checkout(None, &facts(&[("a", 2)], PaymentState::Paid), &stock, NOW);
    assert_eq!(d.outcome, Outcome::Fulfilled);
    assert_eq!(
        d.effects.links_off(),
        vec![link("plink_a"), link("plink_session")]
    );
    assert_eq!(
        d.write.items[0].deactivated_links,
        vec![link("plink_a"), link("plink_session")]
    );
    assert!(d.effects.publish[0].sold_out());
}

#[test]
fn an_order_larger_than_stock_takes_nothing_and_is_refunded_in_full() {
    let stock = items(&[item("a", 5, 3), item("b", 1, 9)]);
    let d = decide_checkout(
        None,
        &facts(&[("a", 2), ("b", 2)], PaymentState::Paid),
        &stock,
        NOW,
    );
    assert!(
        matches!(&d.outcome, Outcome::Oversold(s) if s.len() == 1 && s[0].product_id == pid("b"))
    );
    assert!(d.write.items.is_empty(), "nothing is decremented");
    assert!(d.write.ledger.is_empty());
    assert_eq!(
        d.write.checks.len(),
        2,
        "the decision depends on both versions"
    );
    let refund = d.effects.refund.expect("a refund");
    assert_eq!(refund.payment_intent.as_str(), "pi_1");
    assert_eq!(refund.idempotency_key, "stockbridge-refund-cs_test_1");
    assert_eq!(
        created(&decide_checkout(
            None,
            &facts(&[("b", 2)], PaymentState::Paid),
            &stock,
            NOW
        ))
        .status,
        OrderStatus::Oversold
    );
}

#[test]
fn an_order_racing_for_a_sold_out_product_records_the_session_link_as_switched_off() {
    let mut sold_out = item("a", 0, 4);
    sold_out.deactivated_links = vec![link("plink_a")];
    let d = decide_checkout(
        None,
        &facts(&[("a", 1)], PaymentState::Paid),
        &items(&[sold_out]),
        NOW,
    );
    assert_eq!(d.write.items.len(), 1);
    assert_eq!(
        d.write.items[0].version, 4,
        "no stock change, no new version"
    );
    assert_eq!(
        d.write.items[0].deactivated_links,
        vec![link("plink_a"), link("plink_session")]
    );
    let off = &d.effects.deactivate;
    assert_eq!(off.len(), 1, "one switch-off per item: {off:?}");
    assert_eq!(
        off[0].fresh,
        vec![link("plink_session")],
        "recorded now: only the link not yet switched off"
    );
    assert_eq!(
        off[0].recorded,
        vec![link("plink_a")],
        "a recorded link is made sure of (a late switch-on may have landed), never forgotten"
    );
}

#[test]
fn an_order_of_unknown_products_is_unmatched_and_not_refunded() {
    let d = decide_checkout(
        None,
        &facts(&[("zzz", 1)], PaymentState::Paid),
        &Items::new(),
        NOW,
    );
    assert_eq!(d.outcome, Outcome::Unmatched);
    let r = created(&d);
    assert_eq!(r.status, OrderStatus::Unmatched);
    assert_eq!(r.unmatched.len(), 1);
    assert!(d.effects.refund.is_none());
    assert!(d.write.items.is_empty());
}

#[test]
fn a_mixed_order_takes_the_catalog_lines_and_keeps_the_unknown_ones_aside() {
    let stock = items(&[item("a", 5, 0)]);
    let d = decide_checkout(
        None,
        &facts(&[("a", 1), ("zzz", 1)], PaymentState::Paid),
        &stock,
        NOW,
    );
    assert_eq!(d.outcome, Outcome::Fulfilled);
    assert_eq!(created(&d).unmatched[0].product_id, pid("zzz"));
    assert_eq!(d.write.items.len(), 1);
}

#[test]
fn an_order_with_too_many_products_for_one_transaction_is_refunded() {
    let names: Vec<String> = (0..=MAX_PRODUCTS_PER_ORDER)
        .map(|i| format!("p{i}"))
        .collect();
    let stock = items(&names.iter().map(|n| item(n, 10, 0)).collect::<Vec<_>>());
    let lines: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 1)).collect();
    let d = decide_checkout(None, &facts(&lines, PaymentState::Paid), &stock, NOW);
    assert!(matches!(d.outcome, Outcome::Oversold(_)));
    assert!(d.effects.refund.is_some());
}

#[test]
fn a_redelivered_order_writes_nothing_and_reruns_its_effects() {
    let stock = items(&[item("a", 0, 2)]);
    let first = decide_checkout(None, &facts(&[("a", 5)], PaymentState::Paid), &stock, NOW);
    let record = created(&first).clone();
    let again = decide_checkout(
        Some(&record),
        &facts(&[("a", 5)], PaymentState::Paid),
        &stock,
        NOW,
    );
    assert_eq!(
        again.outcome,
        Outcome::AlreadyApplied(OrderStatus::Oversold)
    );
    assert!(again.write.is_empty());
    assert_eq!(
        again.effects.refund, first.effects.refund,
        "same refund, same idempotency key"
    );
    assert_eq!(again.effects.publish.len(), 1);
}

#[test]
fn a_refunded_order_is_not_refunded_again() {
    let stock = items(&[item("a", 0, 2)]);
    let mut record = created(&decide_checkout(
        None,
        &facts(&[("a", 5)], PaymentState::Paid),
        &stock,
        NOW,
    ))
    .clone();
    record.refund_id = Some(crate::RefundId::parse("re_1").unwrap());
    assert!(effects_for_existing(&record, &stock).refund.is_none());
}

#[test]
fn a_held_order_is_confirmed_when_its_payment_clears() {
    let stock = items(&[item("a", 5, 0)]);
    let held = decide_checkout(
        None,
        &facts(&[("a", 2)], PaymentState::Awaiting),
        &stock,
        NOW,
    );
    assert_eq!(held.outcome, Outcome::AwaitingPayment);
    let record = created(&held).clone();
    assert_eq!(record.status, OrderStatus::Pending);
    let d = decide_payment_succeeded(
        &record,
        &StripeEventId::parse("evt_2").unwrap(),
        &stock,
        NOW,
    );
    assert_eq!(d.outcome, Outcome::Confirmed);
    match d.write.order {
        Some(OrderWrite::Update {
            record,
            expected_status,
            expected_payment,
            expected_after_sale: 0,
        }) => {
            assert_eq!(expected_status, OrderStatus::Pending);
            assert_eq!(expected_payment, PaymentState::Awaiting);
            assert_eq!(record.status, OrderStatus::Fulfilled);
            assert_eq!(record.payment, PaymentState::Paid);
        }
        other => panic!("{other:?}"),
    }
    // The units left `available` when held; now they leave `held`, sold.
    let u = &d.write.items[0];
    assert_eq!(u.available, stock.values().next().unwrap().available);
    assert_eq!(
        u.held,
        stock.values().next().unwrap().held.saturating_sub(2)
    );
}

#[test]
fn a_held_order_whose_payment_fails_gives_its_stock_back_and_restocks_links() {
    let stock = items(&[item("a", 2, 0)]);
    let held = decide_checkout(
        None,
        &facts(&[("a", 2)], PaymentState::Awaiting),
        &stock,
        NOW,
    );
    let record = created(&held).clone();
    let mut after = item("a", 0, 1);
    after.deactivated_links = held.write.items[0].deactivated_links.clone();
    let d = decide_payment_failed(
        Some(&record),
        &record.order_id,
        &record.store_id,
        &StripeEventId::parse("evt_3").unwrap(),
        &items(&[after]),
        NOW,
    );
    assert_eq!(d.outcome, Outcome::Released);
    assert_eq!(d.write.items[0].available, 2);
    assert_eq!(d.write.items[0].version, 2);
    assert_eq!(
        d.write.items[0].deactivated_links,
        vec![link("plink_a"), link("plink_session")],
        "kept recorded until they are back on"
    );
    assert_eq!(d.write.ledger[0].delta, 2);
    assert_eq!(
        d.effects.reactivate[0].links,
        vec![link("plink_a"), link("plink_session")]
    );
}

#[test]
fn a_failure_that_overtakes_completed_leaves_a_record_so_nothing_is_held_later() {
    let f = facts(&[("a", 1)], PaymentState::Awaiting);
    let d = decide_payment_failed(
        None,
        &f.order_id,
        &f.store_id,
        &f.event_id,
        &Items::new(),
        NOW,
    );
    let record = created(&d).clone();
    assert_eq!(record.status, OrderStatus::Failed);
    let late = decide_checkout(Some(&record), &f, &items(&[item("a", 5, 0)]), NOW);
    assert!(late.write.is_empty());
}

#[test]
fn an_oversold_held_order_is_refunded_only_once_its_payment_clears() {
    let stock = items(&[item("a", 0, 1)]);
    let held = decide_checkout(
        None,
        &facts(&[("a", 1)], PaymentState::Awaiting),
        &stock,
        NOW,
    );
    assert!(held.effects.refund.is_none(), "no money yet");
    let record = created(&held).clone();
    let paid = decide_payment_succeeded(
        &record,
        &StripeEventId::parse("evt_2").unwrap(),
        &stock,
        NOW,
    );
    assert!(paid.effects.refund.is_some());
    let failed = decide_payment_failed(
        Some(&record),
        &record.order_id,
        &record.store_id,
        &StripeEventId::parse("evt_3").unwrap(),
        &stock,
        NOW,
    );
    assert!(failed.effects.refund.is_none());
    assert!(failed.write.items.is_empty());
}

#[test]
fn a_restock_from_zero_switches_back_on_only_the_links_stockbridge_switched_off() {
    let mut sold_out = item("a", 0, 5);
    sold_out.deactivated_links = vec![link("plink_a")];
    let d = decide_stock_change(&sold_out, StockChange::Set(10), "cli", NOW).unwrap();
    assert_eq!(d.effects.reactivate[0].links, vec![link("plink_a")]);
    assert_eq!(
        d.write.items[0].deactivated_links,
        vec![link("plink_a")],
        "until switched on"
    );
    assert_eq!(d.write.items[0].version, 6);
    assert_eq!(d.write.ledger[0].delta, 10);
    assert_eq!(d.effects.publish[0].available, 10);
}

#[test]
fn only_a_merchant_change_from_nothing_to_sell_is_a_restock_for_the_waitlist() {
    // From 0 by a set or an adjustment: recorded with the write, at the version it writes.
    let d = decide_stock_change(&item("a", 0, 5), StockChange::Set(10), "cli", NOW).unwrap();
    let r = d.write.restock.expect("a restock");
    assert_eq!((r.version, r.available, r.at), (6, 10, NOW));
    let d = decide_stock_change(&item("a", 0, 5), StockChange::Adjust(2), "cli", NOW).unwrap();
    assert_eq!(d.write.restock.map(|r| r.available), Some(2));
    // Held units do not count: on hand 3, all held, is sold out to a buyer.
    let mut held = item("a", 0, 5);
    held.held = 3;
    let d = decide_stock_change(&held, StockChange::Set(5), "cli", NOW).unwrap();
    assert_eq!(d.write.restock.map(|r| r.available), Some(2));
    // Not from 0, to 0, or a count of nothing: no restock.
    for (level, change) in [
        (3, StockChange::Set(10)),
        (3, StockChange::Adjust(-3)),
        (0, StockChange::Set(0)),
        (0, StockChange::Adjust(0)),
    ] {
        let d = decide_stock_change(&item("a", level, 5), change, "cli", NOW).unwrap();
        assert!(d.write.restock.is_none(), "{level} {change:?}");
    }
}

#[test]
fn an_adjustment_below_zero_is_refused() {
    let e = decide_stock_change(&item("a", 3, 0), StockChange::Adjust(-4), "cli", NOW).unwrap_err();
    assert!(matches!(
        e,
        StockChangeError::BelowZero { available: 3, .. }
    ));
    let d = decide_stock_change(&item("a", 3, 0), StockChange::Adjust(-3), "cli", NOW).unwrap();
    assert_eq!(d.effects.links_off(), vec![link("plink_a")]);
}

/// Applies decisions to a model store the way the transaction does: all or nothing, refused when
/// a version moved. Used by the property tests.
pub(crate) fn apply(stock: &mut Items, d: &Decision) -> bool {
    for u in &d.write.items {
        if stock[&u.product_id].version != u.expected_version {
            return false;
        }
    }
    for (_, p, v) in &d.write.checks {
        if stock[p].version != *v {
            return false;
        }
    }
    for u in &d.write.items {
        let it = stock.get_mut(&u.product_id).unwrap();
        it.available = u.available;
        it.version = u.version;
        it.deactivated_links = u.deactivated_links.clone();
    }
    true
}

proptest! {
    /// However orders interleave, stock never goes below zero, every unit taken belongs to a
    /// fulfilled order, and every order is either fulfilled or refunded — exactly once.
    #[test]
    fn orders_in_any_order_never_oversell_and_account_for_every_unit(
        initial in 0u64..20,
        orders in proptest::collection::vec((1u64..5, 0usize..3), 1..40),
    ) {
        let mut stock = items(&[item("a", initial, 0)]);
        let mut fulfilled_units = 0u64;
        let mut refunds = 0usize;
        let mut oversold = 0usize;
        let mut records: std::collections::BTreeMap<String, OrderRecord> = Default::default();
        for (i, (qty, deliveries)) in orders.iter().enumerate() {
            let mut f = facts(&[("a", *qty)], PaymentState::Paid);
            f.order_id = OrderId::parse(format!("cs_{i}")).unwrap();
            // Each order is delivered 1..=3 times.
            for _ in 0..=*deliveries {
                let existing = records.get(f.order_id.as_str());
                let d = decide_checkout(existing, &f, &stock, NOW);
                prop_assert!(apply(&mut stock, &d));
                if let Some(OrderWrite::Create(r)) = &d.write.order {
                    match r.status {
                        OrderStatus::Fulfilled => fulfilled_units += qty,
                        OrderStatus::Oversold => oversold += 1,
                        s => prop_assert!(false, "unexpected {s:?}"),
                    }
                    if d.effects.refund.is_some() { refunds += 1; }
                    records.insert(f.order_id.to_string(), r.clone());
                }
            }
        }
        prop_assert_eq!(stock[&pid("a")].available + fulfilled_units, initial);
        prop_assert_eq!(refunds, oversold);
        prop_assert_eq!(records.len(), orders.len());
    }

    /// A decision made on a stale version never applies.
    #[test]
    fn a_decision_on_a_stale_version_is_refused(initial in 1u64..20, q in 1u64..5) {
        let stale = items(&[item("a", initial, 0)]);
        let mut stock = items(&[item("a", initial, 1)]);
        let d = decide_checkout(None, &facts(&[("a", q)], PaymentState::Paid), &stale, NOW);
        prop_assert!(!apply(&mut stock, &d));
    }

    /// Set and adjust keep the ledger consistent: delta equals the level change.
    #[test]
    fn a_stock_change_ledger_delta_matches_the_level_change(start in 0u64..1000, delta in -1000i64..1000) {
        let it = item("a", start, 3);
        match decide_stock_change(&it, StockChange::Adjust(delta), "cli", NOW) {
            Ok(d) => {
                prop_assert_eq!(d.write.ledger[0].delta, delta);
                prop_assert_eq!(i128::from(d.write.ledger[0].level), i128::from(start) + i128::from(delta));
                prop_assert_eq!(d.write.items[0].version, 4);
            }
            Err(_) => prop_assert!(i128::from(start) + i128::from(delta) < 0),
        }
    }
}

#[test]
fn a_redelivery_after_a_failed_reactivation_retries_it() {
    let mut restocked = item("a", 4, 6);
    restocked.deactivated_links = vec![link("plink_a")];
    let record = created(&decide_checkout(
        None,
        &facts(&[("a", 1)], PaymentState::Paid),
        &items(&[item("a", 5, 0)]),
        NOW,
    ))
    .clone();
    let e = effects_for_existing(&record, &items(&[restocked]));
    assert_eq!(e.reactivate.len(), 1);
    assert_eq!(e.reactivate[0].links, vec![link("plink_a")]);
    assert!(e.deactivate.is_empty());
}

#[test]
fn an_async_success_with_a_held_order_confirms_it_and_without_one_applies_it() {
    let stock = items(&[item("a", 5, 0)]);
    let held = created(&decide_checkout(
        None,
        &facts(&[("a", 2)], PaymentState::Awaiting),
        &stock,
        NOW,
    ))
    .clone();
    let confirmed = decide_async_success(
        Some(&held),
        &facts(&[("a", 2)], PaymentState::Awaiting),
        &stock,
        NOW,
    );
    assert_eq!(confirmed.outcome, Outcome::Confirmed);
    let fresh = decide_async_success(
        None,
        &facts(&[("a", 2)], PaymentState::Awaiting),
        &stock,
        NOW,
    );
    assert_eq!(fresh.outcome, Outcome::Fulfilled);
    assert_eq!(created(&fresh).payment, PaymentState::Paid);
}

#[test]
fn an_item_created_at_zero_has_its_links_switched_off() {
    let n = decide_new_item(
        StoreId::parse("s").unwrap(),
        pid("a"),
        "A".into(),
        0,
        vec![link("plink_a")],
        "import",
        NOW,
    )
    .unwrap();
    assert_eq!(n.item.deactivated_links, vec![link("plink_a")]);
    assert_eq!(n.effects.links_off(), vec![link("plink_a")]);
    assert_eq!(n.effects.publish[0].available, 0);
    let n = decide_new_item(
        StoreId::parse("s").unwrap(),
        pid("a"),
        "A".into(),
        3,
        vec![link("plink_a")],
        "import",
        NOW,
    )
    .unwrap();
    assert!(n.effects.deactivate.is_empty());
    assert_eq!((n.entry.delta, n.entry.level, n.item.version), (3, 3, 1));
}

#[test]
fn an_oversold_order_with_too_many_products_checks_nothing() {
    let names: Vec<String> = (0..100).map(|i| format!("p{i}")).collect();
    let stock = items(&names.iter().map(|n| item(n, 10, 0)).collect::<Vec<_>>());
    let lines: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 1)).collect();
    let d = decide_checkout(None, &facts(&lines, PaymentState::Paid), &stock, NOW);
    assert!(
        d.write.checks.is_empty() && d.write.items.is_empty(),
        "fits in one transaction"
    );
}

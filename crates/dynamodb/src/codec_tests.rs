//! Every record through its codec and back, without a table.

use super::*;
use stockbridge_domain::take::TakeMark;
use stockbridge_domain::{OrderLine, OrderStatus, PaymentState, Quantity, StripeEventId};

fn item() -> CatalogItem {
    CatalogItem {
        store_id: StoreId::parse("s1").unwrap(),
        product_id: ProductId::parse("prod_a").unwrap(),
        name: "Mug".into(),
        available: 7,
        held: 2,
        version: 12,
        payment_links: vec![PaymentLinkId::parse("plink_1").unwrap()],
        deactivated_links: vec![PaymentLinkId::parse("plink_2").unwrap()],
        updated_at: Timestamp(1_700_000_000_123),
        managed_since: Timestamp(1_690_000_000_000),
        unrecorded_take: None,
        spread: None,
        low_stock: None,
    }
}

#[test]
fn an_item_comes_back_as_it_was_stored() {
    assert_eq!(parse_item(&item_attrs(&item())).unwrap(), item());
}

#[test]
fn an_item_keeps_reading_with_a_take_mark_on_it_and_the_mark_is_found_for_its_order() {
    let mut a = item_attrs(&item());
    let order = OrderId::parse("cs_1").unwrap();
    // `t{16 hex}` then v|a|h|q: the version, level and held units after the take, and its units.
    let names = takes::MarkNames::of(&order);
    let stem = names.version.trim_end_matches('v');
    for (suffix, value) in [("v", 12), ("a", 7), ("h", 2), ("q", 3)] {
        a.insert(format!("{stem}{suffix}"), n(value));
    }
    assert_eq!(parse_item(&a).unwrap(), item(), "marks are not item fields");
    let mark = takes::mark_on(&a, &order).unwrap();
    assert_eq!(
        mark,
        Some(TakeMark {
            version: 12,
            available: 7,
            held: 2,
            quantity: 3,
            shard: None,
        })
    );
    let other = OrderId::parse("cs_2").unwrap();
    assert_eq!(takes::mark_on(&a, &other).unwrap(), None);
}

#[test]
fn a_ledger_entry_comes_back_as_it_was_stored() {
    let e = LedgerEntry {
        store_id: StoreId::parse("s1").unwrap(),
        product_id: ProductId::parse("prod_a").unwrap(),
        version: 12,
        delta: -3,
        level: 7,
        held: 2,
        operation: Some("op_1".into()),
        cause: Cause {
            kind: CauseKind::Order,
            stripe_event_id: Some(StripeEventId::parse("evt_1").unwrap()),
            order_id: Some(OrderId::parse("cs_1").unwrap()),
            actor: Some("cli".into()),
        },
        at: Timestamp(1_700_000_000_123),
        shard: None,
    };
    let a = ledger_attrs(&e, None);
    assert_eq!(
        get_s(&a, "sk", "?").unwrap(),
        "LEDGER#00000000000000000012",
        "keyed by version, sorting in order"
    );
    assert_eq!(parse_ledger(&a).unwrap(), e);
}

#[test]
fn an_order_comes_back_as_it_was_stored() {
    let r = OrderRecord {
        order_id: OrderId::parse("cs_1").unwrap(),
        store_id: StoreId::parse("s1").unwrap(),
        status: OrderStatus::Fulfilled,
        payment: PaymentState::Paid,
        lines: vec![OrderLine {
            product_id: ProductId::parse("prod_a").unwrap(),
            quantity: Quantity::new(3).unwrap(),
        }],
        unmatched: vec![],
        shortfalls: vec![],
        payment_intent: None,
        payment_link: Some(PaymentLinkId::parse("plink_1").unwrap()),
        refund_id: Some(RefundId::parse("re_1").unwrap()),
        created_by: StripeEventId::parse("evt_1").unwrap(),
        last_event: StripeEventId::parse("evt_1").unwrap(),
        created_at: Timestamp(1),
        updated_at: Timestamp(2),
        hold: None,
        predating: vec![],
        refund_amount: None,
        after_sale: None,
    };
    let a = order_attrs(&r, None).unwrap();
    assert_eq!(get_s(&a, "pk", "?").unwrap(), "ORDER#cs_1");
    assert_eq!(parse_order(&a).unwrap(), r);
}

#[test]
fn a_record_missing_a_field_is_corrupt_and_names_its_key() {
    let mut a = item_attrs(&item());
    a.remove("available");
    match parse_item(&a) {
        Err(StoreError::Corrupt { key, reason }) => {
            assert_eq!(key, "ITEM#s1#prod_a");
            assert!(reason.contains("available"), "{reason}");
        }
        other => panic!("expected corrupt, got {other:?}"),
    }
}

//! The DynamoDB adapter against a real DynamoDB API (moto, started by `scripts/test`).
//! Run with `scripts/test`, or start `scripts/stack`, source its env file and
//! `cargo test -p stockbridge-dynamodb -- --include-ignored`.

use stockbridge_app::ports::{CatalogReader, InventoryStore, StoreError};
use stockbridge_domain::*;
use stockbridge_dynamodb::DynamoStore;

mod common;

use common::{entry, facts, item, store};

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_decision_round_trips_through_one_transaction() {
    let s = store().await;
    for i in [item("prod_a", 3), item("prod_b", 1)] {
        s.create_item(&i, &entry(&i)).await.unwrap();
    }
    let f = facts("cs_1", &[("prod_a", 2), ("prod_b", 1)]);
    let products: Vec<ProductId> = f.lines.iter().map(|l| l.product_id.clone()).collect();
    let (existing, items) = s.load(&f.order_id, &f.store_id, &products).await.unwrap();
    assert!(existing.is_none());
    let d = decide_checkout(None, &f, &items, Timestamp(5));
    s.commit(&d.write).await.unwrap();
    let (order, items) = s.load(&f.order_id, &f.store_id, &products).await.unwrap();
    let order = order.unwrap();
    assert_eq!(order.status, OrderStatus::Fulfilled);
    assert_eq!(order.lines.len(), 2);
    assert_eq!(items[&ProductId::parse("prod_a").unwrap()].available, 1);
    let b = &items[&ProductId::parse("prod_b").unwrap()];
    assert_eq!((b.available, b.version), (0, 2));
    assert_eq!(
        b.deactivated_links,
        vec![PaymentLinkId::parse("plink_1").unwrap()]
    );
    let ledger = s.ledger(&b.store_id, &b.product_id).await.unwrap();
    assert_eq!(
        ledger.iter().map(|e| e.delta).collect::<Vec<_>>(),
        vec![1, -1]
    );
    assert_eq!(ledger[1].cause.order_id.as_ref().unwrap().as_str(), "cs_1");

    // The same decision again is refused: the order exists and the versions moved.
    assert!(matches!(
        s.commit(&d.write).await,
        Err(StoreError::Conflict)
    ));
    s.record_refund(
        &order.order_id,
        &RefundId::parse("re_1").unwrap(),
        Timestamp(9),
    )
    .await
    .unwrap();
    assert_eq!(
        s.load_order(&order.order_id)
            .await
            .unwrap()
            .unwrap()
            .refund_id
            .unwrap()
            .as_str(),
        "re_1"
    );
    assert_eq!(
        s.orders(std::slice::from_ref(&order.order_id))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_stale_decision_is_a_conflict_and_changes_nothing() {
    let s = store().await;
    let i = item("prod_a", 1);
    s.create_item(&i, &entry(&i)).await.unwrap();
    assert!(matches!(
        s.create_item(&i, &entry(&i)).await,
        Err(StoreError::Conflict)
    ));
    let p = [i.product_id.clone()];
    let (_, items) = s
        .load(&OrderId::parse("cs_x").unwrap(), &i.store_id, &p)
        .await
        .unwrap();
    let first = decide_checkout(None, &facts("cs_1", &[("prod_a", 1)]), &items, Timestamp(2));
    let second = decide_checkout(None, &facts("cs_2", &[("prod_a", 1)]), &items, Timestamp(2));
    s.commit(&first.write).await.unwrap();
    assert!(matches!(
        s.commit(&second.write).await,
        Err(StoreError::Conflict)
    ));
    assert!(
        s.load_order(&OrderId::parse("cs_2").unwrap())
            .await
            .unwrap()
            .is_none(),
        "all or nothing"
    );
    assert_eq!(
        s.item(&i.store_id, &i.product_id)
            .await
            .unwrap()
            .unwrap()
            .available,
        0
    );
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_store_lists_only_its_own_items_and_links_are_forgotten_only_in_stock() {
    let s = store().await;
    let mut other = item("prod_z", 1);
    other.store_id = StoreId::parse("s2").unwrap();
    let mut sold_out = item("prod_b", 0);
    sold_out.deactivated_links = vec![PaymentLinkId::parse("plink_1").unwrap()];
    for i in [item("prod_a", 3), sold_out.clone(), other] {
        s.create_item(&i, &entry(&i)).await.unwrap();
    }
    let listed: Vec<String> = s
        .store_items(&StoreId::parse("s1").unwrap())
        .await
        .unwrap()
        .iter()
        .map(|i| i.product_id.to_string())
        .collect();
    assert_eq!(listed, vec!["prod_a", "prod_b"]);
    // At 0 the record is kept whatever happens to the links.
    s.clear_deactivated(
        &sold_out.store_id,
        &sold_out.product_id,
        &sold_out.deactivated_links,
    )
    .await
    .unwrap();
    assert_eq!(
        s.item(&sold_out.store_id, &sold_out.product_id)
            .await
            .unwrap()
            .unwrap()
            .deactivated_links
            .len(),
        1
    );
    s.update_item_details(&sold_out.store_id, &sold_out.product_id, "Renamed", &[])
        .await
        .unwrap();
    assert_eq!(
        s.item(&sold_out.store_id, &sold_out.product_id)
            .await
            .unwrap()
            .unwrap()
            .name,
        "Renamed"
    );
    assert!(matches!(
        s.update_item_details(
            &sold_out.store_id,
            &ProductId::parse("nope").unwrap(),
            "x",
            &[]
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn the_replay_cursor_only_moves_from_where_it_was_read() {
    use stockbridge_app::ports::{Cursor, CursorStore};
    let s = store().await;
    assert_eq!(s.cursor().await.unwrap(), None);
    let a = Cursor {
        event_id: None,
        created: 10,
    };
    let b = Cursor {
        event_id: Some(StripeEventId::parse("evt_b").unwrap()),
        created: 20,
    };
    s.advance_cursor(None, &a).await.unwrap();
    assert!(
        matches!(s.advance_cursor(None, &b).await, Err(StoreError::Conflict)),
        "a second initialisation loses"
    );
    s.advance_cursor(Some(&a), &b).await.unwrap();
    assert!(
        matches!(
            s.advance_cursor(Some(&a), &b).await,
            Err(StoreError::Conflict)
        ),
        "a stale run cannot move it"
    );
    assert_eq!(s.cursor().await.unwrap(), Some(b.clone()));
    let c = Cursor {
        event_id: None,
        created: 30,
    };
    s.advance_cursor(Some(&b), &c).await.unwrap();
    assert_eq!(
        s.cursor().await.unwrap(),
        Some(c),
        "a time-only cursor keeps no event id"
    );
}

fn details(p: &str, revision: u64) -> ProductDetails {
    ProductDetails {
        product_id: ProductId::parse(p).unwrap(),
        name: format!("Product {p}"),
        description: None,
        images: vec![],
        price: Money::new(1200, "usd").unwrap(),
        active: true,
        metadata: Default::default(),
        stores: [StoreId::parse("s1").unwrap()].into_iter().collect(),
        revision,
        updated_at: Timestamp(1),
    }
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn catalog_details_and_mappings_are_compare_and_set_and_scanned_in_segments() {
    use stockbridge_app::ports::CatalogStore;
    let s = store().await;
    let p = ProductId::parse("tee").unwrap();
    assert!(s.entry(&p).await.unwrap().is_none());
    s.put_details(&details("tee", 1), None).await.unwrap();
    assert!(matches!(
        s.put_details(&details("tee", 1), None).await,
        Err(StoreError::Conflict)
    ));
    s.put_details(&details("tee", 2), Some(1)).await.unwrap();
    assert!(matches!(
        s.put_details(&details("tee", 3), Some(1)).await,
        Err(StoreError::Conflict)
    ));
    let e = s.entry(&p).await.unwrap().unwrap();
    assert_eq!(e.details.revision, 2);
    assert_eq!(e.mapping, StripeMapping::default());

    let m = StripeMapping {
        price_id: Some(PriceId::parse("price_1").unwrap()),
        synced_revision: 2,
        version: 1,
        ..StripeMapping::default()
    };
    s.save_mapping(&p, &m, 0).await.unwrap();
    assert!(matches!(
        s.save_mapping(&p, &m, 0).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(s.entry(&p).await.unwrap().unwrap().mapping, m);

    for i in 0..30 {
        s.put_details(&details(&format!("p{i:02}"), 1), None)
            .await
            .unwrap();
    }
    let found = s
        .entries(&[
            p.clone(),
            ProductId::parse("p07").unwrap(),
            ProductId::parse("nope").unwrap(),
        ])
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[&p].mapping, m);

    // Every product exactly once across segments, whatever the page size.
    for segments in [1u32, 3] {
        let mut seen = Vec::new();
        for segment in 0..segments {
            let mut start = None;
            loop {
                let (page, next) = s.scan_entries(segment, segments, start).await.unwrap();
                seen.extend(page.into_iter().map(|e| e.details.product_id.to_string()));
                match next {
                    Some(n) => start = Some(n),
                    None => break,
                }
            }
        }
        seen.sort();
        assert_eq!(seen.len(), 31, "segments={segments}: {seen:?}");
        seen.dedup();
        assert_eq!(seen.len(), 31, "segments={segments}: duplicates");
    }

    assert_eq!(s.checkpoint("backfill").await.unwrap(), None);
    s.save_checkpoint("backfill", "prod_9").await.unwrap();
    assert_eq!(
        s.checkpoint("backfill").await.unwrap().as_deref(),
        Some("prod_9")
    );
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn parked_items_and_the_pause_switches_round_trip() {
    use stockbridge_app::parking::{Parked, ParkedState, ParkingLot};
    use stockbridge_app::ports::{Control, ControlStore, Controls, InventoryStore};
    let s = store().await;
    assert!(s.parked().await.unwrap().is_empty());
    let record = Parked {
        id: "event:evt_bad".into(),
        reason: "detail.data.object.metadata.store_id: invalid".into(),
        attempts: 1,
        state: ParkedState::Parked,
        first_failed: Timestamp(1),
        last_failed: Timestamp(2),
        event: Some(serde_json::json!({"id": "evt_bad"})),
    };
    s.save_parked(&record).await.unwrap();
    assert_eq!(s.parked().await.unwrap(), vec![record.clone()]);
    s.remove_parked(&record.id).await.unwrap();
    assert!(s.parked().await.unwrap().is_empty());

    assert_eq!(s.controls().await.unwrap(), Controls::default());
    s.set_control(Control::Links, true).await.unwrap();
    s.set_control(Control::Refunds, true).await.unwrap();
    s.set_control(Control::Refunds, false).await.unwrap();
    let paused = Controls {
        links_paused: true,
        ..Controls::default()
    };
    assert_eq!(
        s.controls().await.unwrap(),
        paused,
        "the writer sees it at once"
    );
    let other = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws_config::load_from_env().await),
        s.table(),
    );
    assert_eq!(
        other.controls().await.unwrap(),
        paused,
        "another function reads it"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn an_item_remembers_its_links_store_and_its_management_boundary() {
    let s = store().await;
    let link = PaymentLinkId::parse("plink_1").unwrap();
    assert_eq!(s.link_store(&link).await.unwrap(), None);
    let mut i = item("mug", 3);
    i.managed_since = Timestamp(1_700_000_000_000);
    s.create_item(&i, &entry(&i)).await.unwrap();
    assert_eq!(
        s.link_store(&link).await.unwrap(),
        Some(StoreId::parse("s1").unwrap())
    );
    let read = s.item(&i.store_id, &i.product_id).await.unwrap().unwrap();
    assert_eq!(read.managed_since, Timestamp(1_700_000_000_000));
    let other = PaymentLinkId::parse("plink_2").unwrap();
    s.update_item_details(
        &i.store_id,
        &i.product_id,
        "Mug",
        std::slice::from_ref(&other),
    )
    .await
    .unwrap();
    assert_eq!(
        s.link_store(&other).await.unwrap(),
        Some(StoreId::parse("s1").unwrap())
    );
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn orders_awaiting_a_delayed_payment_are_listed() {
    use stockbridge_app::ports::CatalogReader;
    let s = store().await;
    let i = item("mug", 3);
    s.create_item(&i, &entry(&i)).await.unwrap();
    let mut f = facts("cs_debit", &[("mug", 1)]);
    f.payment = stockbridge_domain::PaymentState::Awaiting;
    let d = decide_checkout(
        None,
        &f,
        &std::collections::BTreeMap::from([(i.product_id.clone(), i.clone())]),
        Timestamp(5),
    );
    s.commit(&d.write).await.unwrap();
    let paid = decide_checkout(
        None,
        &facts("cs_paid", &[("mug", 1)]),
        &std::collections::BTreeMap::from([(
            i.product_id.clone(),
            s.item(&i.store_id, &i.product_id).await.unwrap().unwrap(),
        )]),
        Timestamp(6),
    );
    s.commit(&paid.write).await.unwrap();
    let awaiting = s.awaiting_orders(None).await.unwrap();
    assert_eq!(
        awaiting
            .iter()
            .map(|o| o.order_id.as_str())
            .collect::<Vec<_>>(),
        ["cs_debit"]
    );
    assert_eq!(s.awaiting_orders(Some(&i.store_id)).await.unwrap().len(), 1);
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn an_after_sale_update_is_conditional_on_its_revision_and_the_returns_policy_round_trips() {
    use stockbridge_app::ports::StoreSettings;
    use stockbridge_domain::after_sale::{
        ReturnsPolicy, Reversal, ReversalFacts, decide_after_sale,
    };
    let s = store().await;
    let i = item("prod_r", 3);
    s.create_item(&i, &entry(&i)).await.unwrap();
    let f = facts("cs_after", &[("prod_r", 2)]);
    let products = vec![i.product_id.clone()];
    let (_, items) = s.load(&f.order_id, &f.store_id, &products).await.unwrap();
    s.commit(&decide_checkout(None, &f, &items, Timestamp(5)).write)
        .await
        .unwrap();

    assert_eq!(
        s.returns_policy(&i.store_id).await.unwrap(),
        ReturnsPolicy::default()
    );
    let on = ReturnsPolicy {
        refunds: true,
        lost_disputes: false,
    };
    s.set_returns_policy(&i.store_id, on).await.unwrap();
    assert_eq!(s.returns_policy(&i.store_id).await.unwrap(), on);

    let refund = |event: &str, amount, in_full| ReversalFacts {
        event_id: StripeEventId::parse(event).unwrap(),
        reversal: Reversal::Refund {
            amount_refunded: amount,
            in_full,
        },
    };
    let (order, items) = s.load(&f.order_id, &f.store_id, &products).await.unwrap();
    let order = order.unwrap();
    let partial = decide_after_sale(
        &order,
        &refund("evt_p", 100, false),
        on,
        &items,
        Timestamp(6),
    );
    let full = decide_after_sale(
        &order,
        &refund("evt_f", 2000, true),
        on,
        &items,
        Timestamp(6),
    );
    s.commit(&partial.write).await.unwrap();
    // Decided on the record before the partial refund: refused, nothing returned twice or lost.
    assert!(matches!(
        s.commit(&full.write).await,
        Err(StoreError::Conflict)
    ));
    let (order, items) = s.load(&f.order_id, &f.store_id, &products).await.unwrap();
    let order = order.unwrap();
    assert_eq!(order.after_sale.as_ref().unwrap().refunded, 100);
    let full = decide_after_sale(
        &order,
        &refund("evt_f", 2000, true),
        on,
        &items,
        Timestamp(7),
    );
    s.commit(&full.write).await.unwrap();
    let (order, items) = s.load(&f.order_id, &f.store_id, &products).await.unwrap();
    assert_eq!(items[&i.product_id].available, 3);
    let after = order.unwrap().after_sale.unwrap();
    assert_eq!((after.revision, after.returned.is_some()), (2, true));
    let ledger = s.ledger(&i.store_id, &i.product_id).await.unwrap();
    assert_eq!(ledger.last().unwrap().cause.kind, CauseKind::Return);

    // An update decided before a refund was recorded never puts it back to none.
    let g = facts("cs_after_2", &[("prod_r", 1)]);
    let (_, items) = s.load(&g.order_id, &g.store_id, &products).await.unwrap();
    s.commit(&decide_checkout(None, &g, &items, Timestamp(8)).write)
        .await
        .unwrap();
    let (order, items) = s.load(&g.order_id, &g.store_id, &products).await.unwrap();
    let stale = decide_after_sale(
        &order.unwrap(),
        &refund("evt_g", 50, false),
        on,
        &items,
        Timestamp(9),
    );
    s.record_refund(&g.order_id, &RefundId::parse("re_g").unwrap(), Timestamp(9))
        .await
        .unwrap();
    assert!(matches!(
        s.commit(&stale.write).await,
        Err(StoreError::Conflict)
    ));
    let kept = s.load_order(&g.order_id).await.unwrap().unwrap();
    assert_eq!(kept.refund_id.unwrap().as_str(), "re_g");
}

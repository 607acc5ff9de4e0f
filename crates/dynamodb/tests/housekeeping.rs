//! The sweeper's sparse index of pending holds and the retention TTL, against the local
//! DynamoDB API (moto, started by `scripts/test`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use stockbridge_app::ports::{CatalogReader, HoldKey, InventoryStore};
use stockbridge_domain::*;
use stockbridge_dynamodb::{DynamoStore, LEGACY_HOLD_MS, Retention};

mod common;

/// Now-ish, in ms: a table created by `table create` has used the index since the epoch.
const T: i64 = 1_800_000_000_000;

async fn raw() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&aws_config::load_from_env().await)
}

fn order(id: &str, status: OrderStatus, hold_expires: Option<i64>) -> OrderRecord {
    let event = StripeEventId::parse("evt_1").unwrap();
    OrderRecord {
        order_id: OrderId::parse(id).unwrap(),
        store_id: StoreId::parse("s1").unwrap(),
        status,
        payment: if status == OrderStatus::Fulfilled {
            PaymentState::Paid
        } else {
            PaymentState::Awaiting
        },
        lines: vec![],
        unmatched: vec![],
        shortfalls: vec![],
        payment_intent: None,
        payment_link: None,
        refund_id: None,
        created_by: event.clone(),
        last_event: event,
        created_at: Timestamp(1_000),
        updated_at: Timestamp(86_400_000),
        hold: hold_expires.map(|t| HoldTerms {
            expires_at: Timestamp(T + t),
            ..HoldTerms::default()
        }),
        predating: vec![],
        refund_amount: None,
    }
}

async fn put(s: &DynamoStore, o: &OrderRecord) {
    let w = WriteSet {
        order: Some(OrderWrite::Create(o.clone())),
        ..WriteSet::default()
    };
    s.commit(&w).await.unwrap();
}

async fn attrs(s: &DynamoStore, pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    raw()
        .await
        .get_item()
        .table_name(s.table())
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap()
}

fn ids(keys: &[HoldKey]) -> Vec<&str> {
    keys.iter().map(|k| k.order_id.as_str()).collect()
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn the_sweeper_pages_through_only_the_pending_holds_that_expired() {
    let s = common::store().await;
    for (id, due) in [
        ("cs_c", 30),
        ("cs_a", 10),
        ("cs_e", 50),
        ("cs_b", 20),
        ("cs_d", 40),
    ] {
        put(&s, &order(id, OrderStatus::Pending, Some(due))).await;
    }
    // Not listed: a hold due later, a settled hold, a delayed payment without a hold.
    put(&s, &order("cs_later", OrderStatus::Pending, Some(1_000))).await;
    put(&s, &order("cs_sold", OrderStatus::Fulfilled, Some(5))).await;
    put(&s, &order("cs_bank", OrderStatus::Pending, None)).await;

    let mut seen = vec![];
    let mut after = None;
    loop {
        let page = s
            .expired_holds(Timestamp(T + 100), after.as_ref(), 2)
            .await
            .unwrap();
        assert!(page.holds.len() <= 2);
        seen.extend(page.holds);
        after = page.next;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(ids(&seen), ["cs_a", "cs_b", "cs_c", "cs_d", "cs_e"]);
    assert_eq!(seen[0].expires_at, Timestamp(T + 10));

    // Settling a hold takes it out of the index (the order is written whole).
    let mut settled = order("cs_a", OrderStatus::Released, Some(10));
    settled.payment = PaymentState::Failed;
    let w = WriteSet {
        order: Some(OrderWrite::Update {
            record: settled,
            expected_status: OrderStatus::Pending,
            expected_payment: PaymentState::Awaiting,
        }),
        ..WriteSet::default()
    };
    s.commit(&w).await.unwrap();
    let page = s.expired_holds(Timestamp(T + 100), None, 10).await.unwrap();
    assert_eq!(ids(&page.holds), ["cs_b", "cs_c", "cs_d", "cs_e"]);
    assert_eq!(page.next, None);
    assert!(
        !attrs(&s, "ORDER#cs_a", "ORDER")
            .await
            .contains_key("hold_queue")
    );
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn an_upgraded_table_keeps_finding_holds_an_earlier_release_placed_until_they_have_expired() {
    let s = common::store().await;
    let c = raw().await;
    // An upgraded table: no record of when the index began, and a hold written the earlier
    // release's way (no index key).
    c.delete_item()
        .table_name(s.table())
        .key("pk", AttributeValue::S("SCHEMA".into()))
        .key("sk", AttributeValue::S("SCHEMA".into()))
        .send()
        .await
        .unwrap();
    put(&s, &order("cs_old", OrderStatus::Pending, Some(10))).await;
    c.update_item()
        .table_name(s.table())
        .key("pk", AttributeValue::S("ORDER#cs_old".into()))
        .key("sk", AttributeValue::S("ORDER".into()))
        .update_expression("REMOVE hold_queue")
        .send()
        .await
        .unwrap();
    put(&s, &order("cs_new", OrderStatus::Pending, Some(20))).await;

    let now = Timestamp(T + 1_000_000);
    let page = s.expired_holds(now, None, 10).await.unwrap();
    assert_eq!(
        ids(&page.holds),
        ["cs_old", "cs_new"],
        "the scan finds both"
    );
    let since = attrs(&s, "SCHEMA", "SCHEMA").await["holds_indexed_since"].clone();
    assert_eq!(
        since,
        AttributeValue::N(now.0.to_string()),
        "the first sweep records it"
    );

    // A day and an hour later, every earlier hold has expired long ago: the index alone.
    let later = Timestamp(now.0 + LEGACY_HOLD_MS);
    let page = s.expired_holds(later, None, 10).await.unwrap();
    assert_eq!(ids(&page.holds), ["cs_new"]);
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn closed_orders_ledger_entries_and_refunds_carry_a_ttl_in_seconds_open_orders_none() {
    let s = common::store()
        .await
        .with_retention(Retention::days(40).unwrap());
    let day = 86_400;
    put(&s, &order("cs_hold", OrderStatus::Pending, Some(10))).await;
    put(&s, &order("cs_done", OrderStatus::Fulfilled, None)).await;
    let mut short = order("cs_short", OrderStatus::Oversold, None);
    short.payment = PaymentState::Paid;
    short.payment_intent = Some(PaymentIntentId::parse("pi_1").unwrap());
    put(&s, &short).await;
    let ttl = |a: &HashMap<String, AttributeValue>| a.get("expires_at").cloned();

    assert_eq!(ttl(&attrs(&s, "ORDER#cs_hold", "ORDER").await), None);
    assert_eq!(
        ttl(&attrs(&s, "ORDER#cs_done", "ORDER").await),
        Some(AttributeValue::N((day + 40 * day).to_string())),
        "updated at day 1 (in ms), kept 40 days, in epoch seconds"
    );
    assert_eq!(
        ttl(&attrs(&s, "ORDER#cs_short", "ORDER").await),
        None,
        "its refund is due"
    );
    s.record_refund(
        &short.order_id,
        &RefundId::parse("re_1").unwrap(),
        Timestamp(2 * day * 1000),
    )
    .await
    .unwrap();
    assert_eq!(
        ttl(&attrs(&s, "ORDER#cs_short", "ORDER").await),
        Some(AttributeValue::N((42 * day).to_string()))
    );

    let i = common::item("prod_a", 3);
    let mut e = common::entry(&i);
    e.at = Timestamp(3 * day * 1000);
    s.create_item(&i, &e).await.unwrap();
    let ledger = attrs(&s, "ITEM#s1#prod_a", &format!("LEDGER#{:020}", 1)).await;
    assert_eq!(
        ttl(&ledger),
        Some(AttributeValue::N((43 * day).to_string()))
    );
    assert_eq!(
        ttl(&attrs(&s, "ITEM#s1#prod_a", "ITEM").await),
        None,
        "stock is kept"
    );
}

#[test]
fn a_retention_shorter_than_stripe_redelivers_events_is_refused() {
    assert!(Retention::days(0).unwrap().is_none(), "0 keeps everything");
    let e = Retention::days(34).unwrap_err();
    assert!(e.to_string().contains("at least 35"), "{e}");
    assert!(Retention::days(35).unwrap().is_some());
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn migrate_brings_an_earlier_releases_records_up_to_date_once() {
    let s = common::store()
        .await
        .with_retention(Retention::days(40).unwrap());
    let c = raw().await;
    let strip = |pk: &str, sk: &str, attrs: &'static str| {
        c.update_item()
            .table_name(s.table())
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .update_expression(format!("REMOVE {attrs}"))
            .send()
    };
    // As the earlier release wrote them: no index key, no expiries.
    put(&s, &order("cs_held", OrderStatus::Pending, Some(10))).await;
    put(&s, &order("cs_sold", OrderStatus::Fulfilled, None)).await;
    let i = common::item("prod_a", 3);
    s.create_item(&i, &common::entry(&i)).await.unwrap();
    strip("ORDER#cs_held", "ORDER", "hold_queue").await.unwrap();
    strip("ORDER#cs_sold", "ORDER", "expires_at").await.unwrap();
    strip("ITEM#s1#prod_a", &format!("LEDGER#{:020}", 1), "expires_at")
        .await
        .unwrap();
    let before = s.expired_holds(Timestamp(T + 100), None, 10).await.unwrap();
    assert!(before.holds.is_empty(), "the index does not see the old hold");

    let dry = s.migrate(true).await.unwrap();
    assert_eq!((dry.holds_indexed, dry.expiries_set), (1, 2));
    assert!(!attrs(&s, "ORDER#cs_held", "ORDER").await.contains_key("hold_queue"));

    let done = s.migrate(false).await.unwrap();
    assert_eq!((done.holds_indexed, done.expiries_set, done.changed_meanwhile), (1, 2, 0));
    let after = s.expired_holds(Timestamp(T + 100), None, 10).await.unwrap();
    assert_eq!(ids(&after.holds), ["cs_held"]);
    assert_eq!(
        attrs(&s, "ORDER#cs_sold", "ORDER").await.get("expires_at"),
        Some(&AttributeValue::N((86_400 + 40 * 86_400).to_string()))
    );
    assert!(attrs(&s, "ORDER#cs_held", "ORDER").await.get("expires_at").is_none(), "open");
    let again = s.migrate(false).await.unwrap();
    assert_eq!((again.holds_indexed, again.expiries_set), (0, 0), "idempotent");
}

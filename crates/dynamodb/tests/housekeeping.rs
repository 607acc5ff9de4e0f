//! The sweeper's index of pending holds, the retention TTL and link terms, against the local
//! DynamoDB API (moto, started by `scripts/test`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use stockbridge_app::ports::{CatalogReader, HoldKey, InventoryStore};
use stockbridge_domain::*;
use stockbridge_dynamodb::{DynamoStore, Retention};

mod common;

/// Now-ish, in ms.
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
        after_sale: None,
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

    // Settling a hold moves it out of the index's `pending` partition.
    let mut settled = order("cs_a", OrderStatus::Released, Some(10));
    settled.payment = PaymentState::Failed;
    let w = WriteSet {
        order: Some(OrderWrite::Update {
            record: settled,
            expected_status: OrderStatus::Pending,
            expected_payment: PaymentState::Awaiting,
            expected_after_sale: 0,
        }),
        ..WriteSet::default()
    };
    s.commit(&w).await.unwrap();
    let page = s.expired_holds(Timestamp(T + 100), None, 10).await.unwrap();
    assert_eq!(ids(&page.holds), ["cs_b", "cs_c", "cs_d", "cs_e"]);
    assert_eq!(page.next, None);
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_table_whose_index_is_not_there_yet_is_scanned_instead() {
    // An upgraded table while DynamoDB builds the index: as if it had none.
    let c = raw().await;
    let name = format!("adapter-noindex-{}", std::process::id());
    let def = |n: &str| {
        aws_sdk_dynamodb::types::AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |n: &str, t| {
        aws_sdk_dynamodb::types::KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    c.create_table()
        .table_name(&name)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .attribute_definitions(def("pk"))
        .attribute_definitions(def("sk"))
        .key_schema(key("pk", aws_sdk_dynamodb::types::KeyType::Hash))
        .key_schema(key("sk", aws_sdk_dynamodb::types::KeyType::Range))
        .send()
        .await
        .unwrap();
    let s = DynamoStore::new(c.clone(), &name);
    put(&s, &order("cs_b", OrderStatus::Pending, Some(20))).await;
    put(&s, &order("cs_a", OrderStatus::Pending, Some(10))).await;
    put(&s, &order("cs_later", OrderStatus::Pending, Some(1_000))).await;
    let page = s.expired_holds(Timestamp(T + 100), None, 1).await.unwrap();
    assert_eq!(
        ids(&page.holds),
        ["cs_a", "cs_b"],
        "every expired hold, in one page"
    );
    assert_eq!(page.next, None);
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
async fn migrate_gives_records_from_before_the_retention_their_expiry_once() {
    let s = common::store()
        .await
        .with_retention(Retention::days(40).unwrap());
    let c = raw().await;
    let strip = |pk: &str, sk: &str| {
        c.update_item()
            .table_name(s.table())
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .update_expression("REMOVE expires_at")
            .send()
    };
    // As a release without retention wrote them.
    put(&s, &order("cs_held", OrderStatus::Pending, Some(10))).await;
    put(&s, &order("cs_sold", OrderStatus::Fulfilled, None)).await;
    let i = common::item("prod_a", 3);
    s.create_item(&i, &common::entry(&i)).await.unwrap();
    strip("ORDER#cs_sold", "ORDER").await.unwrap();
    strip("ITEM#s1#prod_a", &format!("LEDGER#{:020}", 1))
        .await
        .unwrap();

    let plain = DynamoStore::new(raw().await, s.table());
    assert_eq!(
        plain.migrate(false).await.unwrap().expiries_set,
        0,
        "no retention, no expiry"
    );

    let dry = s.migrate(true).await.unwrap();
    assert_eq!(dry.expiries_set, 2);
    assert!(
        !attrs(&s, "ORDER#cs_sold", "ORDER")
            .await
            .contains_key("expires_at")
    );

    let done = s.migrate(false).await.unwrap();
    assert_eq!((done.expiries_set, done.changed_meanwhile), (2, 0));
    assert_eq!(
        attrs(&s, "ORDER#cs_sold", "ORDER").await.get("expires_at"),
        Some(&AttributeValue::N((86_400 + 40 * 86_400).to_string()))
    );
    assert_eq!(
        attrs(&s, "ITEM#s1#prod_a", &format!("LEDGER#{:020}", 1))
            .await
            .get("expires_at"),
        Some(&AttributeValue::N((40 * 86_400).to_string()))
    );
    assert!(
        !attrs(&s, "ORDER#cs_held", "ORDER")
            .await
            .contains_key("expires_at"),
        "open"
    );
    assert_eq!(
        s.migrate(false).await.unwrap().expiries_set,
        0,
        "idempotent"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_links_terms_round_trip_and_survive_the_link_being_attached_again() {
    use stockbridge_app::ports::InventoryStore;
    let s = common::store().await;
    let i = common::item("prod_a", 3);
    s.create_item(&i, &common::entry(&i)).await.unwrap();
    let link = PaymentLinkId::parse("plink_1").unwrap();
    assert_eq!(s.link_terms(&link).await.unwrap(), None);
    let terms = LinkTerms {
        product_id: ProductId::parse("prod_a").unwrap(),
        unit_amount: 1500,
        currency: "usd".into(),
        max_quantity: 1,
    };
    s.remember_link_terms(&link, &terms).await.unwrap();
    // `catalog import` or the sync attaching the link again rewrites `LINK`, not `TERMS`.
    s.update_item_details(
        &i.store_id,
        &i.product_id,
        "Mug v2",
        std::slice::from_ref(&link),
    )
    .await
    .unwrap();
    assert_eq!(s.link_terms(&link).await.unwrap(), Some(terms));
    assert_eq!(s.link_store(&link).await.unwrap(), Some(i.store_id.clone()));
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_function_keeps_a_links_terms_a_while_once_read_and_a_missing_one_for_less() {
    use stockbridge_app::ports::InventoryStore;
    let s = common::store().await;
    let writer = DynamoStore::new(raw().await, s.table());
    let (known, unknown) = (
        PaymentLinkId::parse("plink_known").unwrap(),
        PaymentLinkId::parse("plink_new").unwrap(),
    );
    let terms = LinkTerms {
        product_id: ProductId::parse("prod_a").unwrap(),
        unit_amount: 1500,
        currency: "usd".into(),
        max_quantity: 1,
    };
    writer.remember_link_terms(&known, &terms).await.unwrap();
    assert_eq!(s.link_terms(&known).await.unwrap(), Some(terms.clone()));
    assert_eq!(s.link_terms(&unknown).await.unwrap(), None);
    // Another function records the new link's terms: this one asks again only after
    // LINK_TERMS_UNKNOWN_TTL; a fresh one sees them at once.
    writer.remember_link_terms(&unknown, &terms).await.unwrap();
    assert_eq!(s.link_terms(&unknown).await.unwrap(), None);
    let fresh = DynamoStore::new(raw().await, s.table());
    assert_eq!(
        fresh.link_terms(&unknown).await.unwrap(),
        Some(terms.clone())
    );
    // Terms once read are trusted for LINK_TERMS_TTL (the sync writes the same terms for a
    // link every time).
    raw()
        .await
        .delete_item()
        .table_name(s.table())
        .key("pk", AttributeValue::S("LINK#plink_known".into()))
        .key("sk", AttributeValue::S("TERMS".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(s.link_terms(&known).await.unwrap(), Some(terms));
}

//! Shared by the adapter tests: a fresh table on the local DynamoDB API, and records to fill it.
// Each test binary uses a part of this module.
#![allow(dead_code)]

use stockbridge_domain::*;
use stockbridge_dynamodb::DynamoStore;

/// A store on a new table of its own (created, and created again as a no-op).
pub async fn store() -> DynamoStore {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
        "AWS_ENDPOINT_URL_DYNAMODB is not set: run scripts/test"
    );
    let table = format!(
        "adapter-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let s = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws_config::load_from_env().await),
        table,
    );
    assert!(s.create_table().await.unwrap());
    assert!(
        !s.create_table().await.unwrap(),
        "creating twice is a no-op"
    );
    s
}

/// A catalog item of store `s1` with one Payment Link.
pub fn item(p: &str, available: u64) -> CatalogItem {
    CatalogItem {
        store_id: StoreId::parse("s1").unwrap(),
        product_id: ProductId::parse(p).unwrap(),
        name: "Mug".into(),
        available,
        held: 0,
        version: 1,
        payment_links: vec![PaymentLinkId::parse("plink_1").unwrap()],
        deactivated_links: vec![],
        updated_at: Timestamp(1),
        managed_since: stockbridge_domain::Timestamp(0),
        unrecorded_take: None,
        spread: None,
        low_stock: None,
    }
}

/// The ledger entry that creates `i`.
pub fn entry(i: &CatalogItem) -> LedgerEntry {
    LedgerEntry {
        store_id: i.store_id.clone(),
        product_id: i.product_id.clone(),
        version: 1,
        delta: i.available as i64,
        level: i.available,
        held: i.held,
        operation: None,
        cause: Cause {
            kind: CauseKind::Set,
            stripe_event_id: None,
            order_id: None,
            actor: Some("test".into()),
        },
        at: Timestamp(1),
        shard: None,
    }
}

/// A paid order of store `s1` with these `(product, quantity)` lines.
pub fn facts(order: &str, lines: &[(&str, u64)]) -> CheckoutFacts {
    CheckoutFacts {
        order_id: OrderId::parse(order).unwrap(),
        store_id: StoreId::parse("s1").unwrap(),
        lines: lines
            .iter()
            .map(|(p, q)| OrderLine {
                product_id: ProductId::parse(*p).unwrap(),
                quantity: Quantity::new(*q).unwrap(),
            })
            .collect(),
        payment: PaymentState::Paid,
        payment_intent: Some(PaymentIntentId::parse("pi_1").unwrap()),
        payment_link: None,
        event_id: StripeEventId::parse("evt_1").unwrap(),
        paid_at: stockbridge_domain::PaidAt::At(stockbridge_domain::Timestamp(0)),
        amounts: std::collections::BTreeMap::new(),
    }
}

/// Another store (another function's) on an existing table.
pub async fn store_on(table: &str) -> DynamoStore {
    DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws_config::load_from_env().await),
        table,
    )
}

/// The same store, as another task of the same function holds it.
pub fn clone_store(s: &DynamoStore) -> DynamoStore {
    s.clone()
}

/// The item `i` as loaded now (for a decision).
pub async fn items_of(s: &DynamoStore, i: &CatalogItem) -> Items {
    use stockbridge_app::ports::InventoryStore;
    let order = OrderId::parse("cs_reader").unwrap();
    s.load(&order, &i.store_id, std::slice::from_ref(&i.product_id))
        .await
        .unwrap()
        .1
}

/// POST a JSON body to the local DynamoDB's model control (`/_model...`; GET without a body),
/// returning the answer (devstack/dynamo_model.py).
pub fn model(path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let url = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("run scripts/test");
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    // A test bed that stops answering fails the test instead of hanging the suite.
    c.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let method = if body.is_empty() { "GET" } else { "POST" };
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
}

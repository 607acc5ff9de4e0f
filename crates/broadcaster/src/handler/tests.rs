use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use stockbridge_app::memory::{MemoryPublisher, MemoryStore};
use stockbridge_domain::{CatalogItem, PaymentLinkId, ProductId, StoreId, Timestamp};

use super::*;

fn stocked(store: &MemoryStore, product: &str, available: u64, version: u64) {
    store.put_item(CatalogItem {
        store_id: StoreId::parse("store_a").unwrap(),
        product_id: ProductId::parse(product).unwrap(),
        name: product.to_owned(),
        available,
        held: 0,
        version,
        payment_links: vec![PaymentLinkId::parse(format!("plink_{product}")).unwrap()],
        deactivated_links: vec![],
        updated_at: Timestamp(1_000),
        managed_since: Timestamp(0),
        unrecorded_take: None,
        spread: None,
        low_stock: None,
    });
}

/// A record as Lambda hands it over from a `KEYS_ONLY` stream.
fn record(pk: &str, sk: &str, seq: &str) -> Value {
    json!({
        "eventID": format!("e{seq}"), "eventName": "MODIFY", "eventSource": "aws:dynamodb",
        "eventVersion": "1.1", "awsRegion": "us-east-1",
        "dynamodb": {"ApproximateCreationDateTime": 1.7e9, "Keys": {"pk": {"S": pk}, "sk": {"S": sk}},
                     "SequenceNumber": seq, "SizeBytes": 40, "StreamViewType": "KEYS_ONLY"},
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x"
    })
}

/// One invocation of the handler, without merchant events.
async fn run<P: StockPublisher>(
    store: &MemoryStore,
    publisher: &P,
    batch: Value,
) -> Result<DynamoDbEventResponse, Diagnostic> {
    handle(
        (store, publisher, &stockbridge_app::ports::NoMerchantEvents),
        None,
        &stockbridge_app::memory::TickingClock::default(),
        batch,
    )
    .await
}

fn world() -> (MemoryStore, MemoryPublisher) {
    let store = MemoryStore::default();
    stocked(&store, "prod_tee", 7, 12);
    stocked(&store, "prod_mug", 0, 3);
    (store, MemoryPublisher::default())
}

fn published(p: &MemoryPublisher) -> Vec<(String, u64, u64)> {
    let levels = p.published.lock().unwrap();
    levels
        .iter()
        .map(|l| (l.product_id.to_string(), l.available, l.version))
        .collect()
}

#[tokio::test]
async fn a_batch_publishes_each_changed_item_once_and_skips_what_is_not_stock() {
    let (store, publisher) = world();
    let batch = json!({"Records": [
        record("ITEM#store_a#prod_tee", "ITEM", "100"),
        record("PRODUCT#store_a#prod_tee", "DETAILS", "101"),
        record("ITEM#store_a#prod_tee", "ITEM", "102"),
        record("ITEM#store_a#prod_mug", "ITEM", "103"),
        record("ITEM#no-product-here", "ITEM", "104"),
    ]});
    let response = run(&store, &publisher, batch).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        published(&publisher),
        [
            ("prod_tee".to_owned(), 7, 12),
            ("prod_mug".to_owned(), 0, 3)
        ]
    );
}

#[tokio::test]
async fn a_failed_item_is_retried_from_its_first_record() {
    let (store, publisher) = world();
    // The tee (first in the batch) publishes; the mug's publish fails.
    let batch = json!({"Records": [
        record("ITEM#store_a#prod_tee", "ITEM", "200"),
        record("ITEM#store_a#prod_mug", "ITEM", "201"),
        record("ITEM#store_a#prod_tee", "ITEM", "202"),
        record("ITEM#store_a#prod_mug", "ITEM", "203"),
    ]});
    let failing = FailSecond(&publisher, std::sync::atomic::AtomicUsize::new(0));
    let response = run(&store, &failing, batch).await.unwrap();
    let ids: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(ids, [Some("201".to_owned())]);
    assert_eq!(published(&publisher), [("prod_tee".to_owned(), 7, 12)]);
}

/// Publishes through the memory publisher, failing the second publish.
struct FailSecond<'a>(&'a MemoryPublisher, std::sync::atomic::AtomicUsize);

impl StockPublisher for FailSecond<'_> {
    async fn publish(
        &self,
        level: &stockbridge_domain::StockLevel,
    ) -> Result<(), stockbridge_app::ports::PublishError> {
        if self.1.fetch_add(1, Ordering::SeqCst) == 1 {
            self.0.fail_next.store(1, Ordering::SeqCst);
        }
        self.0.publish(level).await
    }
}

#[tokio::test]
async fn an_event_that_is_not_a_stream_batch_is_an_invalid_input_error() {
    let (store, publisher) = world();
    let err = run(&store, &publisher, json!({"Records": "nope"}))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "stockbridge.Invalid");
    assert!(publisher.published.lock().unwrap().is_empty());
}

#[test]
fn a_refused_level_is_one_embedded_metric_line_the_template_alarms_on() {
    let line: Value = serde_json::from_str(&refused_line(2, std::time::UNIX_EPOCH)).unwrap();
    assert_eq!(line["LevelsRefused"], 2);
    let metric = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(metric["Namespace"], "stockbridge");
    assert_eq!(metric["Metrics"][0]["Name"], "LevelsRefused");
    let template = include_str!("../../../../template.yaml");
    assert!(template.contains("MetricName: LevelsRefused"));
}

#[tokio::test]
async fn a_shard_record_publishes_its_products_level_the_item_and_every_shard_summed() {
    let (store, publisher) = world();
    let (s, p) = (
        StoreId::parse("store_a").unwrap(),
        ProductId::parse("prod_tee").unwrap(),
    );
    stockbridge_app::shards::spread(&store, &s, &p, 3, Timestamp(2_000))
        .await
        .unwrap();
    let batch = json!({"Records": [
        record("SHARD#store_a#prod_tee#2", "SHARD", "200"),
        record("SHARD#store_a#prod_tee#0", "SHARD", "201"),
        record("SHARD#store_a#prod_tee", "SHARD", "202"),
    ]});
    let answer = run(&store, &publisher, batch).await.unwrap();
    assert!(answer.batch_item_failures.is_empty());
    // Spread: the item holds 0 at version 13, the shards 3 + 2 + 2 at version 1 each.
    assert_eq!(published(&publisher), vec![("prod_tee".into(), 7, 16)]);
}

#[tokio::test]
async fn a_restock_is_announced_once_and_a_failed_announcement_stays_pending_without_holding_back_levels()
 {
    use stockbridge_app::memory::{MemoryMerchantEvents, TickingClock};
    use stockbridge_app::ports::{InventoryStore, Waitlist, WaitlistEntry};
    use stockbridge_app::waitlist::{BACK_IN_STOCK, Signer, WaitlistLinks};
    use stockbridge_domain::{StockChange, decide_stock_change};

    let (store, publisher) = world();
    let (s, p) = (
        StoreId::parse("store_a").unwrap(),
        ProductId::parse("prod_mug").unwrap(),
    );
    let entry = WaitlistEntry {
        store_id: s.clone(),
        product_id: p.clone(),
        email: "ana@example.com".into(),
        confirmed: None,
        joined: Timestamp(1),
    };
    store.add_entry(&entry, Timestamp(i64::MAX)).await.unwrap();
    store
        .confirm_entry(&s, &p, &entry.email_key(), (3, 0), Timestamp(i64::MAX))
        .await
        .unwrap();
    // The merchant's restock of the sold-out mug, as `stock set` commits it.
    let mug = store.item(&s, &p).await.unwrap().unwrap();
    let d = decide_stock_change(&mug, StockChange::Set(6), "cli", Timestamp(2_000)).unwrap();
    store.commit(&d.write).await.unwrap();
    let batch = json!({"Records": [
        record("ITEM#store_a#prod_mug", "ITEM", "200"),
        record("RESTOCKS", "store_a#prod_mug#00000000000000000004", "201"),
        record("ITEM#store_a#prod_tee", "ITEM", "202"),
    ]});
    let links = WaitlistLinks {
        signer: Signer::new(&[9u8; 32]).unwrap(),
        base: "https://x.example".into(),
    };
    let events = MemoryMerchantEvents::default();
    let clock = TickingClock::default();
    events.fail_next(1);
    let first = handle(
        (&store, &publisher, &events),
        Some(&links),
        &clock,
        batch.clone(),
    )
    .await
    .unwrap();
    assert!(
        first.batch_item_failures.is_empty(),
        "levels are not held back"
    );
    assert_eq!(published(&publisher).len(), 2);
    assert!(events.published().iter().all(|(t, _)| t != BACK_IN_STOCK));
    assert_eq!(
        store.pending_restocks(10).await.unwrap().len(),
        1,
        "pending"
    );
    // Delivered again (or retried): announced once.
    for _ in 0..2 {
        handle(
            (&store, &publisher, &events),
            Some(&links),
            &clock,
            batch.clone(),
        )
        .await
        .unwrap();
    }
    let announced: Vec<Value> = events
        .published()
        .into_iter()
        .filter(|(t, _)| t == BACK_IN_STOCK)
        .map(|(_, d)| d)
        .collect();
    assert_eq!(announced.len(), 1);
    assert_eq!(
        (
            announced[0]["count"].as_u64(),
            announced[0]["restock"].as_u64()
        ),
        (Some(1), Some(4))
    );
    assert!(
        announced[0]["entries_url"]
            .as_str()
            .unwrap()
            .starts_with("https://x.example/waitlist/entries?token=")
    );
    assert!(store.pending_restocks(10).await.unwrap().is_empty());
}

use stockbridge_domain::{ProductId, StoreId};

use super::*;
use crate::memory::{MemoryMerchantEvents, MemoryStore, test_item};
use crate::ports::LowStockStore;

fn ids() -> (StoreId, ProductId) {
    (
        StoreId::parse("s1").unwrap(),
        ProductId::parse("tee").unwrap(),
    )
}

/// The store with the item at `available`, and the item as a reader would read it.
async fn at(store: &MemoryStore, available: u64) -> (CatalogItem, StockLevel) {
    let (s, p) = ids();
    let mut item = store.snapshot().items[&(s, p)].clone();
    item.available = available;
    store.put_item(item.clone());
    let level = item.level();
    (item, level)
}

fn crossings(events: &MemoryMerchantEvents) -> Vec<u64> {
    events
        .published()
        .iter()
        .map(|(t, d)| {
            assert_eq!(t, LOW_STOCK);
            d["crossing"].as_u64().unwrap()
        })
        .collect()
}

async fn world(threshold: u64) -> (MemoryStore, MemoryMerchantEvents) {
    let store = MemoryStore::default();
    let (s, p) = ids();
    store.put_item(test_item(&s, &p, "Tee", 20));
    assert!(store.set_low_stock(&s, &p, Some(threshold)).await.unwrap());
    (store, MemoryMerchantEvents::default())
}

#[tokio::test]
async fn a_crossing_is_published_once_with_its_number_and_the_level() {
    let (store, events) = world(5).await;
    for level in [9, 5, 4, 5, 3] {
        let (item, l) = at(&store, level).await;
        watch_low_stock(&store, &events, &item, &l).await.unwrap();
    }
    assert_eq!(crossings(&events), vec![1]);
    let (_, detail) = &events.published()[0];
    assert_eq!(
        (detail["available"].as_u64(), detail["threshold"].as_u64()),
        (Some(5), Some(5))
    );
    // Two readers of the same change (the item as both read it): still one alert.
    let (item, l) = at(&store, 9).await; // re-armed
    watch_low_stock(&store, &events, &item, &l).await.unwrap();
    let (item, l) = at(&store, 2).await;
    let (a, b) = tokio::join!(
        watch_low_stock(&store, &events, &item, &l),
        watch_low_stock(&store, &events, &item, &l)
    );
    assert_eq!([a.unwrap(), b.unwrap()].iter().flatten().count(), 1);
    assert_eq!(crossings(&events), vec![1, 2]);
}

#[tokio::test]
async fn a_failed_publish_stays_pending_and_is_published_at_the_next_read() {
    let (store, events) = world(5).await;
    events.fail_next(1);
    let (item, l) = at(&store, 4).await;
    assert!(watch_low_stock(&store, &events, &item, &l).await.is_err());
    assert!(events.published().is_empty());
    // The next read (the stream's retry, or any later change): published, then not again.
    for level in [4, 3] {
        let (item, l) = at(&store, level).await;
        watch_low_stock(&store, &events, &item, &l).await.unwrap();
    }
    assert_eq!(crossings(&events), vec![1]);
    let (s, p) = ids();
    let state = store.snapshot().items[&(s, p)].low_stock.unwrap();
    assert_eq!((state.low, state.crossings, state.pending), (true, 1, None));
}

#[tokio::test]
async fn an_item_without_a_threshold_never_alerts() {
    let (store, events) = world(5).await;
    let (s, p) = ids();
    store.set_low_stock(&s, &p, None).await.unwrap();
    let (item, l) = at(&store, 0).await;
    assert_eq!(
        watch_low_stock(&store, &events, &item, &l).await.unwrap(),
        None
    );
    assert!(events.published().is_empty());
}

#[tokio::test]
async fn the_published_detail_has_exactly_the_fields_of_the_documented_example() {
    let (store, events) = world(5).await;
    let (item, l) = at(&store, 4).await;
    watch_low_stock(&store, &events, &item, &l).await.unwrap();
    let (_, detail) = &events.published()[0];
    let path = format!(
        "{}/../../events/stockbridge.low_stock.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let example: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(example["detail-type"], LOW_STOCK);
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(detail), keys(&example["detail"]));
}

#[tokio::test]
async fn the_same_threshold_again_keeps_the_state_and_a_new_one_re_arms() {
    let (store, events) = world(5).await;
    let (item, l) = at(&store, 4).await;
    watch_low_stock(&store, &events, &item, &l).await.unwrap();
    let (s, p) = ids();
    store.set_low_stock(&s, &p, Some(5)).await.unwrap(); // a re-import
    let (item, l) = at(&store, 4).await;
    watch_low_stock(&store, &events, &item, &l).await.unwrap();
    assert_eq!(crossings(&events), vec![1]);
    store.set_low_stock(&s, &p, Some(6)).await.unwrap(); // a new threshold: armed
    let (item, l) = at(&store, 4).await;
    watch_low_stock(&store, &events, &item, &l).await.unwrap();
    assert_eq!(crossings(&events), vec![1, 2]);
}

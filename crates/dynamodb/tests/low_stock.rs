//! Low-stock state on stock items against the local DynamoDB API (the adapter's `alerts.rs`):
//! a threshold set and cleared, each step recorded only from the state its reader saw, and a
//! stock change that leaves it in place. Run with `scripts/test`.

use stockbridge_app::ports::{InventoryStore, LowStockStore};
use stockbridge_domain::low_stock::LowStock;
use stockbridge_domain::*;

mod common;

fn ids(p: &str) -> (StoreId, ProductId) {
    (StoreId::parse("s1").unwrap(), ProductId::parse(p).unwrap())
}

/// The mug's low-stock state as stored.
async fn state(s: &stockbridge_dynamodb::DynamoStore) -> Option<LowStock> {
    let (store, product) = ids("mug");
    s.item(&store, &product).await.unwrap().unwrap().low_stock
}

/// Records `to` over `from` on the mug of store s1.
async fn record(s: &stockbridge_dynamodb::DynamoStore, from: &LowStock, to: &LowStock) -> bool {
    let (store, product) = ids("mug");
    s.record_low_stock(&store, &product, from, to)
        .await
        .unwrap()
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_step_is_recorded_once_from_the_state_read_and_survives_a_stock_change() {
    let s = common::store().await;
    let i = common::item("mug", 9);
    s.create_item(&i, &common::entry(&i)).await.unwrap();
    let (store, product) = ids("mug");
    assert!(
        !s.set_low_stock(&store, &ProductId::parse("nope").unwrap(), Some(5))
            .await
            .unwrap()
    );
    assert!(s.set_low_stock(&store, &product, Some(5)).await.unwrap());
    let armed = state(&s).await.unwrap();
    assert_eq!(
        armed,
        LowStock {
            threshold: 5,
            ..LowStock::default()
        }
    );
    let crossed = LowStock {
        low: true,
        crossings: 1,
        pending: Some(1),
        ..armed
    };
    assert!(record(&s, &armed, &crossed).await);
    // A second reader of the same change, with the state it read: refused, nothing written.
    assert!(!record(&s, &armed, &crossed).await);
    let published = LowStock {
        pending: None,
        ..crossed
    };
    assert!(record(&s, &crossed, &published).await);
    assert!(!record(&s, &crossed, &published).await);
    // An order's stock change does not touch it.
    let write = WriteSet {
        items: vec![ItemUpdate {
            store_id: store.clone(),
            product_id: product.clone(),
            expected_version: 1,
            available: 3,
            held: 0,
            version: 2,
            expected_deactivated_links: vec![],
            deactivated_links: vec![],
            at: Timestamp(2),
            managed_since: Timestamp(0),
        }],
        ..WriteSet::default()
    };
    s.commit(&write).await.unwrap();
    let after = s.item(&store, &product).await.unwrap().unwrap();
    assert_eq!((after.available, after.low_stock), (3, Some(published)));
    // The same threshold again (a re-import) leaves the state; a new one arms it.
    assert!(s.set_low_stock(&store, &product, Some(5)).await.unwrap());
    let same = state(&s).await;
    assert_eq!(same, Some(published));
    assert!(s.set_low_stock(&store, &product, Some(6)).await.unwrap());
    let rearmed = state(&s).await.unwrap();
    assert_eq!(
        (rearmed.threshold, rearmed.low, rearmed.crossings),
        (6, false, 1)
    );
    // Cleared: no threshold, no state but the count of crossings kept on the record.
    assert!(s.set_low_stock(&store, &product, None).await.unwrap());
    assert_eq!(state(&s).await, None);
}

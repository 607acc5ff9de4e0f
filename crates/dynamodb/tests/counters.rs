//! The adapter's counters and operation records against a real DynamoDB API (moto, started by
//! `scripts/test`): conditional `UpdateItem`s, as the checkout's caps use them.

use stockbridge_app::ports::{Counters, InventoryStore, Window};
use stockbridge_domain::{Timestamp, WriteSet};

mod common;

use common::store;

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_window_counts_up_to_its_cap_gives_back_and_adds() {
    let s = store().await;
    let w = Window::containing("holds:email:test".into(), Timestamp(1_800_000_123_456), 900);
    let other = Window::containing(
        "holds:email:test".into(),
        Timestamp(1_800_000_123_456 + 900_000),
        900,
    );
    assert_eq!(s.count(&w).await.unwrap(), 0);
    assert!(!s.take(&w, 1, 0).await.unwrap(), "a cap of 0 takes nothing");
    for _ in 0..3 {
        assert!(s.take(&w, 1, 3).await.unwrap());
    }
    assert!(!s.take(&w, 1, 3).await.unwrap(), "the fourth is refused");
    assert_eq!(s.count(&w).await.unwrap(), 3);
    s.give_back(&w, 1).await.unwrap();
    assert_eq!(s.count(&w).await.unwrap(), 2);
    assert!(s.take(&w, 1, 3).await.unwrap());
    // The next window starts from 0; giving back an empty one stays at 0.
    s.give_back(&other, 1).await.unwrap();
    assert_eq!(s.count(&other).await.unwrap(), 0);
    s.add(&other, 1).await.unwrap();
    s.add(&other, 1).await.unwrap();
    assert_eq!(s.count(&other).await.unwrap(), 2);
    // Several at once: all or nothing against the cap, given back together.
    assert!(!s.take(&other, 3, 4).await.unwrap(), "2 + 3 is past 4");
    assert!(s.take(&other, 2, 4).await.unwrap());
    assert_eq!(s.count(&other).await.unwrap(), 4);
    s.give_back(&other, 5).await.unwrap(); // more than there is: refused, stays
    assert_eq!(s.count(&other).await.unwrap(), 4);
    s.give_back(&other, 2).await.unwrap();
    assert_eq!(s.count(&other).await.unwrap(), 2);
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn an_operation_is_recorded_once_with_its_write() {
    let s = store().await;
    let write = WriteSet {
        operation: Some(stockbridge_domain::Operation {
            id: "op_adapter".into(),
            what: "s/p: Adjust(2)".into(),
        }),
        ..WriteSet::default()
    };
    assert_eq!(s.operation_recorded("op_adapter").await.unwrap(), None);
    s.commit(&write).await.unwrap();
    assert_eq!(
        s.operation_recorded("op_adapter").await.unwrap().as_deref(),
        Some("s/p: Adjust(2)")
    );
    assert!(matches!(
        s.commit(&write).await,
        Err(stockbridge_app::ports::StoreError::Conflict)
    ));
}

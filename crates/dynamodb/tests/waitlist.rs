//! The waitlist's records against the local DynamoDB API (the adapter's `waitlist.rs`): a
//! confirmed entry kept from a second join, the served range and its pages, erasure through the
//! address records, and a merchant's restock recorded with its stock and announced once.
//! Run with `scripts/test`.

use stockbridge_app::ports::{InventoryStore, Waitlist, WaitlistEntry};
use stockbridge_domain::*;

mod common;

fn entry(product: &str, email: &str) -> WaitlistEntry {
    WaitlistEntry {
        store_id: StoreId::parse("s1").unwrap(),
        product_id: ProductId::parse(product).unwrap(),
        email: email.into(),
        confirmed: None,
        joined: Timestamp(1_000_000),
    }
}

const LATER: Timestamp = Timestamp(1_000_000 + 86_400_000);

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn entries_are_confirmed_listed_by_restock_and_erased_everywhere() {
    let s = common::store().await;
    let (store, tee) = (
        StoreId::parse("s1").unwrap(),
        ProductId::parse("tee").unwrap(),
    );
    let mug = ProductId::parse("mug").unwrap();
    // Five addresses on the tee's list, confirmed at versions 1..=5; one not confirmed.
    for i in 1..=5u64 {
        let e = entry("tee", &format!("buyer{i}@example.com"));
        assert_eq!(s.add_entry(&e, LATER).await.unwrap(), None);
        assert!(
            s.confirm_entry(&store, &tee, &e.email_key(), i, LATER)
                .await
                .unwrap()
        );
    }
    assert_eq!(
        s.add_entry(&entry("tee", "late@example.com"), LATER)
            .await
            .unwrap(),
        None
    );
    // Joining again leaves a confirmed entry as it is, and says at which version.
    assert_eq!(
        s.add_entry(&entry("tee", "BUYER3@example.com"), LATER)
            .await
            .unwrap(),
        Some(3)
    );
    assert!(
        !s.confirm_entry(&store, &tee, "email:none", 9, LATER)
            .await
            .unwrap()
    );
    // Versions 2..5, by pages of two.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .confirmed_entries(&store, &tee, 2..5, after.as_deref(), 2)
            .await
            .unwrap();
        assert!(page.entries.len() <= 2);
        seen.extend(page.entries.iter().map(|e| e.confirmed.unwrap()));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, vec![2, 3, 4]);
    // Erasure: buyer1 also waits for the mug; both entries go, the others stay.
    let e = entry("mug", "buyer1@example.com");
    s.add_entry(&e, LATER).await.unwrap();
    assert_eq!(s.erase_address(&e.email_key()).await.unwrap(), 2);
    assert!(
        s.confirmed_entries(&store, &tee, 0..9, None, 10)
            .await
            .unwrap()
            .entries
            .iter()
            .all(|e| e.email != "buyer1@example.com")
    );
    assert!(
        s.confirmed_entries(&store, &mug, 0..9, None, 10)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    assert!(!s.remove_entry(&store, &mug, &e.email_key()).await.unwrap());
    assert!(
        s.remove_entry(
            &store,
            &tee,
            &entry("tee", "buyer2@example.com").email_key()
        )
        .await
        .unwrap()
    );
    assert_eq!(
        s.confirmed_entries(&store, &tee, 0..9, None, 10)
            .await
            .unwrap()
            .entries
            .len(),
        3
    );
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_restock_is_written_with_its_stock_and_announced_once() {
    let s = common::store().await;
    let i = common::item("cap", 0);
    s.create_item(&i, &common::entry(&i)).await.unwrap();
    let (store, cap) = (i.store_id.clone(), i.product_id.clone());
    let d = decide_stock_change(&i, StockChange::Set(4), "test", Timestamp(5_000)).unwrap();
    let restock = d.write.restock.clone().expect("a restock from 0");
    s.commit(&d.write).await.unwrap();
    assert_eq!(
        s.pending_restock(&store, &cap, restock.version)
            .await
            .unwrap(),
        Some(restock.clone())
    );
    assert_eq!(s.last_announced(&store, &cap).await.unwrap(), 0);
    s.record_announced(&restock).await.unwrap();
    assert_eq!(
        s.last_announced(&store, &cap).await.unwrap(),
        restock.version
    );
    assert_eq!(
        s.pending_restock(&store, &cap, restock.version)
            .await
            .unwrap(),
        None
    );
    // An older restock recorded late never lowers it.
    let older = Restock {
        version: restock.version - 1,
        ..restock.clone()
    };
    s.record_announced(&older).await.unwrap();
    assert_eq!(
        s.last_announced(&store, &cap).await.unwrap(),
        restock.version
    );
    // A refused stock change writes no restock record either.
    let stale = decide_stock_change(&i, StockChange::Set(9), "test", Timestamp(6_000)).unwrap();
    assert!(s.commit(&stale.write).await.is_err());
    assert_eq!(
        s.pending_restock(&store, &cap, restock.version)
            .await
            .unwrap(),
        None
    );
}

//! The waitlist's records against the local DynamoDB API (the adapter's `waitlist.rs`): a
//! confirmed entry kept from a second join, the served range and its pages, erasure through the
//! address records, and a merchant's restock recorded with its stock and announced once.
//! Run with `scripts/test`.

use stockbridge_app::ports::{Announced, Confirmed, InventoryStore, Waitlist, WaitlistEntry};
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
    // Five addresses on the tee's list, confirmed at item versions 1..=5; one not confirmed.
    let mut item = common::item("tee", 0);
    s.create_item(&item, &common::entry(&item)).await.unwrap();
    for i in 1..=5u64 {
        let e = entry("tee", &format!("buyer{i}@example.com"));
        assert_eq!(s.add_entry(&e, LATER).await.unwrap(), None);
        let at = (item.version, 0);
        let confirmed = s
            .confirm_entry(&store, &tee, &e.email_key(), at, LATER)
            .await
            .unwrap();
        assert_eq!((confirmed, at.0), (Confirmed::Now, i));
        // A second press while waiting writes nothing.
        let again = s
            .confirm_entry(&store, &tee, &e.email_key(), at, LATER)
            .await
            .unwrap();
        assert_eq!(again, Confirmed::AlreadyWaiting);
        let d = decide_stock_change(&item, StockChange::Adjust(0), "test", Timestamp(1)).unwrap();
        s.commit(&d.write).await.unwrap();
        item = s.item(&store, &tee).await.unwrap().unwrap();
    }
    // Confirming as of a version the item has moved past is refused: read again.
    let late = entry("tee", "racer@example.com");
    s.add_entry(&late, LATER).await.unwrap();
    let stale = s
        .confirm_entry(
            &store,
            &tee,
            &late.email_key(),
            (item.version - 1, 0),
            LATER,
        )
        .await;
    assert!(
        matches!(stale, Err(stockbridge_app::ports::StoreError::Conflict)),
        "{stale:?}"
    );
    s.remove_entry(&store, &tee, &late.email_key())
        .await
        .unwrap();
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
    assert_eq!(
        s.confirm_entry(&store, &tee, "email:none", (9, 0), LATER)
            .await
            .unwrap(),
        Confirmed::NoEntry
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
    assert!(!s.remove_entry(&store, &mug, &e.email_key()).await.unwrap());
    assert_eq!(s.erase_address(&e.email_key()).await.unwrap(), 0);
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
    assert_eq!(s.pending_restocks(10).await.unwrap(), vec![restock.clone()]);
    // Claimed from the last claim read, once: a second claimer from the same read loses.
    let none = s.announced(&store, &cap).await.unwrap();
    assert_eq!(none, Announced::default());
    assert!(s.claim_restock(&restock, &none).await.unwrap());
    assert!(!s.claim_restock(&restock, &none).await.unwrap());
    let claimed = s.announced(&store, &cap).await.unwrap();
    assert_eq!(
        claimed,
        Announced {
            version: restock.version,
            from: 0
        }
    );
    let later = Restock {
        version: restock.version + 5,
        ..restock.clone()
    };
    assert!(s.claim_restock(&later, &claimed).await.unwrap());
    assert_eq!(
        s.announced(&store, &cap).await.unwrap(),
        Announced {
            version: later.version,
            from: restock.version
        }
    );
    s.remove_restock(&restock).await.unwrap();
    assert!(s.pending_restocks(10).await.unwrap().is_empty());
    // A refused stock change writes no restock record either.
    let stale = decide_stock_change(&i, StockChange::Set(9), "test", Timestamp(6_000)).unwrap();
    assert!(s.commit(&stale.write).await.is_err());
    assert!(s.pending_restocks(10).await.unwrap().is_empty());
}

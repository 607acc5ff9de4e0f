//! The catalog -> Stripe sync against the in-memory ports: what is created, what is replayed,
//! what is put back.

use std::collections::{BTreeMap, BTreeSet};

use stockbridge_app::catalog_sync::{CatalogSync, Trigger};
use stockbridge_app::memory::{MemoryPayments, MemoryStore, TickingClock};
use stockbridge_app::ports::{CatalogStore, Clock, InventoryStore};
use stockbridge_domain::{
    CatalogItem, Money, PaymentLinkId, ProductDetails, ProductId, StoreId, Timestamp,
};

type Sync = CatalogSync<MemoryStore, MemoryPayments, TickingClock>;

fn pid() -> ProductId {
    ProductId::parse("tee").unwrap()
}

fn store(s: &str) -> StoreId {
    StoreId::parse(s).unwrap()
}

fn details(revision: u64, amount: u64, stores: &[&str]) -> ProductDetails {
    ProductDetails {
        product_id: pid(),
        name: "Tee".into(),
        description: Some("Soft cotton".into()),
        images: vec!["https://img.example/tee.png".into()],
        price: Money::new(amount, "usd").unwrap(),
        active: true,
        metadata: BTreeMap::from([("color".into(), "blue".into())]),
        stores: stores.iter().map(|s| store(s)).collect::<BTreeSet<_>>(),
        revision,
        updated_at: Timestamp(0),
    }
}

fn item(s: &str, available: u64) -> CatalogItem {
    CatalogItem {
        store_id: store(s),
        product_id: pid(),
        name: "Tee".into(),
        available,
        held: 0,
        version: 1,
        payment_links: vec![],
        deactivated_links: vec![],
        updated_at: Timestamp(0),
        managed_since: stockbridge_domain::Timestamp(0),
        unrecorded_take: None,
        spread: None,
        low_stock: None,
    }
}

fn setup(stock: &[(&str, u64)]) -> Sync {
    let store = MemoryStore::default();
    for (s, n) in stock {
        store.put_item(item(s, *n));
    }
    CatalogSync {
        store,
        stripe: MemoryPayments::default(),
        clock: TickingClock::default(),
    }
}

/// The stock item of the product in store `s1`, as stored now.
async fn item_in_s1(sync: &Sync) -> CatalogItem {
    sync.store
        .item(&store("s1"), &pid())
        .await
        .unwrap()
        .unwrap()
}

async fn change(sync: &Sync, d: ProductDetails) {
    let current = sync.store.entry(&d.product_id).await.unwrap();
    sync.store
        .put_details(&d, current.map(|e| e.details.revision))
        .await
        .unwrap();
}

fn calls(sync: &Sync, op: &str) -> usize {
    sync.stripe
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| **c == op)
        .count()
}

#[tokio::test]
async fn a_new_product_gets_a_product_a_price_and_a_link_per_store() {
    let sync = setup(&[("s1", 5), ("s2", 0)]);
    change(&sync, details(1, 1500, &["s1", "s2"])).await;
    let r = sync
        .sync_product(&pid(), Trigger::CatalogChange)
        .await
        .unwrap();
    assert_eq!(r.created, vec!["product", "price", "link:s1", "link:s2"]);
    let stripe = sync.stripe.stripe_catalog();
    let p = &stripe.products[&pid()];
    assert_eq!(
        (p.name.as_str(), p.metadata["color"].as_str()),
        ("Tee", "blue")
    );
    assert_eq!(stripe.prices.len(), 1);
    assert_eq!(p.default_price.as_ref(), Some(&stripe.prices[0].id));
    assert_eq!(stripe.links.len(), 2);
    let m = sync.store.entry(&pid()).await.unwrap().unwrap().mapping;
    assert_eq!(m.synced_revision, 1);
    assert_eq!(m.price_id.as_ref(), Some(&stripe.prices[0].id));
    // Each store's item sells through its own link; the sold-out store's link is off and
    // recorded as switched off by stockbridge (a restock switches it on).
    let s1 = item_in_s1(&sync).await;
    let s2 = sync
        .store
        .item(&store("s2"), &pid())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s1.payment_links, vec![m.links[&store("s1")].clone()]);
    assert!(sync.stripe.link_active(&s1.payment_links[0]));
    assert!(!sync.stripe.link_active(&s2.payment_links[0]));
    assert_eq!(s2.deactivated_links, s2.payment_links);

    // The same change delivered again: Stripe already matches this revision, nothing is called.
    let before = sync.stripe.calls.lock().unwrap().len();
    let again = sync
        .sync_product(&pid(), Trigger::CatalogChange)
        .await
        .unwrap();
    assert!(again.up_to_date);
    assert_eq!(sync.stripe.calls.lock().unwrap().len(), before);
}

#[tokio::test]
async fn a_price_change_delivered_twice_makes_one_new_price_and_replaces_the_link() {
    let sync = setup(&[("s1", 5)]);
    change(&sync, details(1, 1500, &["s1"])).await;
    sync.sync_product(&pid(), Trigger::CatalogChange)
        .await
        .unwrap();
    let old_link = item_in_s1(&sync).await.payment_links[0].clone();

    change(&sync, details(2, 1800, &["s1"])).await;
    let p = pid();
    let (a, b) = tokio::join!(
        sync.sync_product(&p, Trigger::CatalogChange),
        sync.sync_product(&p, Trigger::CatalogChange)
    );
    // One of the two may lose the mapping's compare-and-set; its retry finds it up to date.
    assert!(a.is_ok() || b.is_ok());
    let r = sync
        .sync_product(&pid(), Trigger::CatalogChange)
        .await
        .unwrap();
    assert!(r.up_to_date);

    let stripe = sync.stripe.stripe_catalog();
    let active: Vec<_> = stripe.prices.iter().filter(|p| p.active).collect();
    assert_eq!(
        stripe.prices.len(),
        2,
        "one new price, not two: {:?}",
        stripe.prices
    );
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].amount, Some(1800));
    assert_eq!(stripe.links.len(), 2, "one new link for the new price");
    let item = item_in_s1(&sync).await;
    assert_eq!(item.payment_links.len(), 1);
    assert_ne!(item.payment_links[0], old_link);
    assert!(!sync.stripe.link_active(&old_link), "the old link is off");
    assert!(sync.stripe.link_active(&item.payment_links[0]));
    // Each link keeps the price it was made with: a session still open on the old link is
    // decided at 1500, the new link's at 1800 (issue 13 §1).
    let terms = |l: &PaymentLinkId| {
        let store = sync.store.clone();
        let l = l.clone();
        async move {
            store
                .link_terms(&l)
                .await
                .unwrap()
                .map(|t| (t.product_id, t.unit_amount, t.currency))
        }
    };
    assert_eq!(
        terms(&old_link).await,
        Some((pid(), 1500, "usd".to_owned()))
    );
    assert_eq!(
        terms(&item.payment_links[0]).await,
        Some((pid(), 1800, "usd".to_owned()))
    );
}

#[tokio::test]
async fn a_dashboard_edit_of_an_owned_field_is_put_back_and_recorded() {
    let sync = setup(&[("s1", 5)]);
    change(&sync, details(1, 1500, &["s1"])).await;
    sync.sync_product(&pid(), Trigger::CatalogChange)
        .await
        .unwrap();
    sync.stripe.edit_product(&pid(), |p| {
        p.name = "Renamed in the Dashboard".into();
        p.metadata.insert("tax_note".into(), "theirs".into());
    });
    let r = sync
        .sync_product(&pid(), Trigger::StripeChange)
        .await
        .unwrap();
    assert_eq!(r.drift.len(), 1);
    assert_eq!(r.drift[0].field, "name");
    let stripe = sync.stripe.stripe_catalog();
    assert_eq!(stripe.products[&pid()].name, "Tee");
    // Stripe-owned metadata stays and is recorded in the mapping.
    assert_eq!(stripe.products[&pid()].metadata["tax_note"], "theirs");
    let m = sync.store.entry(&pid()).await.unwrap().unwrap().mapping;
    assert_eq!(m.stripe_metadata["tax_note"], "theirs");
    let recorded = sync.store.recorded();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].1.what, "catalog_field_at_stripe");
    assert_eq!(recorded[0].1.subject, "tee/name");
    // Our own update's event is not drift.
    let r = sync
        .sync_product(&pid(), Trigger::StripeChange)
        .await
        .unwrap();
    assert!(r.drift.is_empty() && r.created.is_empty() && r.updated.is_empty());
}

#[tokio::test]
async fn a_failure_half_way_is_finished_by_the_next_delivery_without_duplicates() {
    let sync = setup(&[("s1", 0)]);
    change(&sync, details(1, 1500, &["s1"])).await;
    // Switching the new link off (stock 0) fails after product, price and link were made.
    sync.stripe
        .fail_links
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let err = sync
        .sync_product(&pid(), Trigger::CatalogChange)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        sync.store
            .entry(&pid())
            .await
            .unwrap()
            .unwrap()
            .mapping
            .synced_revision,
        0
    );
    sync.sync_product(&pid(), Trigger::CatalogChange)
        .await
        .unwrap();
    let stripe = sync.stripe.stripe_catalog();
    assert_eq!(
        (
            stripe.products.len(),
            stripe.prices.len(),
            stripe.links.len()
        ),
        (1, 1, 1)
    );
    assert_eq!(calls(&sync, "create_product"), 1);
    let link: PaymentLinkId = stripe.links[0].id.clone();
    assert!(!sync.stripe.link_active(&link));
}

#[tokio::test]
async fn a_store_that_stops_selling_loses_its_link() {
    let sync = setup(&[("s1", 5), ("s2", 5)]);
    change(&sync, details(1, 1500, &["s1", "s2"])).await;
    sync.sync_product(&pid(), Trigger::CatalogChange)
        .await
        .unwrap();
    let s2_link = sync
        .store
        .item(&store("s2"), &pid())
        .await
        .unwrap()
        .unwrap()
        .payment_links[0]
        .clone();
    change(&sync, details(2, 1500, &["s1"])).await;
    sync.sync_product(&pid(), Trigger::CatalogChange)
        .await
        .unwrap();
    assert!(!sync.stripe.link_active(&s2_link));
    assert!(
        sync.store
            .item(&store("s2"), &pid())
            .await
            .unwrap()
            .unwrap()
            .payment_links
            .is_empty()
    );
    let m = sync.store.entry(&pid()).await.unwrap().unwrap().mapping;
    assert_eq!(m.links.keys().collect::<Vec<_>>(), vec![&store("s1")]);
}

#[tokio::test]
async fn a_product_not_in_the_catalog_is_left_alone() {
    let sync = setup(&[]);
    let r = sync
        .sync_product(&pid(), Trigger::StripeChange)
        .await
        .unwrap();
    assert!(r.not_in_catalog);
    assert!(sync.stripe.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_catalog_check_finds_drift_without_an_event_and_repairs_it() {
    let sync = setup(&[("s1", 5)]);
    change(&sync, details(1, 1500, &["s1"])).await;
    sync.sync_product(&pid(), Trigger::CatalogChange)
        .await
        .unwrap();
    // A second product that was never synced (its stream message was lost).
    let mut other = details(1, 900, &["s1"]);
    other.product_id = ProductId::parse("mug").unwrap();
    change(&sync, other).await;
    // Drift nobody told us about: a renamed product.
    sync.stripe
        .edit_product(&pid(), |p| p.name = "Edited".into());

    let dry = sync.check_catalog(true, 2, 60_000, 0).await.unwrap();
    let mut found: Vec<_> = dry
        .discrepancies
        .iter()
        .map(|d| d.subject.as_str())
        .collect();
    found.sort();
    assert_eq!(found, vec!["mug/price", "tee/name"]);
    assert_eq!(dry.repaired, 0);
    assert_eq!(sync.stripe.stripe_catalog().products[&pid()].name, "Edited");

    let fix = sync.check_catalog(false, 2, 60_000, 0).await.unwrap();
    assert_eq!(fix.repaired, 2);
    let stripe = sync.stripe.stripe_catalog();
    assert_eq!(stripe.products[&pid()].name, "Tee");
    assert!(
        stripe
            .products
            .contains_key(&ProductId::parse("mug").unwrap())
    );

    let clean = sync.check_catalog(false, 2, 60_000, 0).await.unwrap();
    assert!(clean.discrepancies.is_empty(), "{:?}", clean.discrepancies);
    assert_eq!(clean.products, 2);
    assert_eq!(clean.stripe_pages, 1);
}

#[tokio::test]
async fn a_change_younger_than_the_grace_period_is_left_to_the_sync() {
    let sync = setup(&[("s1", 5)]);
    let mut d = details(1, 1500, &["s1"]);
    d.updated_at = sync.clock.now();
    change(&sync, d).await;
    let r = sync.check_catalog(false, 1, 60_000, 0).await.unwrap();
    assert!(r.discrepancies.is_empty());
    assert!(sync.stripe.stripe_catalog().products.is_empty());
}

#[tokio::test]
async fn a_check_over_its_page_budget_continues_in_the_next_run() {
    let sync = setup(&[("s1", 5)]);
    for i in 0..250 {
        let mut d = details(1, 1000 + i, &["s1"]);
        d.product_id = ProductId::parse(format!("p{i:03}")).unwrap();
        change(&sync, d).await;
        sync.sync_product(
            &ProductId::parse(format!("p{i:03}")).unwrap(),
            Trigger::CatalogChange,
        )
        .await
        .unwrap();
    }
    // One never synced (its message was lost).
    let mut lost = details(1, 5, &["s1"]);
    lost.product_id = ProductId::parse("lost").unwrap();
    change(&sync, lost).await;

    let first = sync.check_catalog(true, 2, 60_000, 2).await.unwrap();
    assert!(first.more && !first.resumed);
    assert_eq!(first.stripe_pages, 2);
    let second = sync.check_catalog(true, 2, 60_000, 2).await.unwrap();
    assert!(!second.more && second.resumed);
    // The listing is done over two runs; the final scan finds the product never synced.
    let subjects: Vec<_> = second
        .discrepancies
        .iter()
        .map(|d| d.subject.as_str())
        .collect();
    assert_eq!(subjects, vec!["lost/price"]);
    // The next run starts from the beginning again, with the full check.
    let third = sync.check_catalog(true, 2, 60_000, 0).await.unwrap();
    assert!(!third.resumed);
    assert_eq!(third.products, 251);
}

#[tokio::test]
async fn a_store_without_a_stock_record_gets_its_link_once_the_record_exists() {
    let sync = setup(&[("s1", 5)]);
    change(&sync, details(1, 1500, &["s1", "s2"])).await;
    sync.sync_product(&pid(), Trigger::CatalogChange)
        .await
        .unwrap();
    assert_eq!(
        sync.stripe.stripe_catalog().links.len(),
        1,
        "no orphan link for s2"
    );
    sync.store.put_item(item("s2", 3));
    let r = sync.check_catalog(false, 1, 60_000, 0).await.unwrap();
    let subjects: Vec<_> = r.discrepancies.iter().map(|d| d.subject.as_str()).collect();
    assert_eq!(subjects, vec!["tee/links"]);
    let s2 = sync
        .store
        .item(&store("s2"), &pid())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s2.payment_links.len(), 1);
    assert!(
        sync.check_catalog(false, 1, 60_000, 0)
            .await
            .unwrap()
            .discrepancies
            .is_empty()
    );
}

#[tokio::test]
async fn a_replaced_link_leaves_the_sold_out_record_so_a_restock_never_switches_it_on() {
    // GIVEN a sold-out product whose link stockbridge switched off
    let sync = setup(&[("s1", 0)]);
    change(&sync, details(1, 4500, &["s1"])).await;
    sync.sync_product(&pid(), Trigger::CatalogChange)
        .await
        .unwrap();
    let read = || async {
        sync.store
            .item(&store("s1"), &pid())
            .await
            .unwrap()
            .unwrap()
    };
    let old = read().await.payment_links[0].clone();
    assert_eq!(read().await.deactivated_links, vec![old.clone()]);
    // WHEN its price changes (a new link replaces the old one)
    change(&sync, details(2, 5200, &["s1"])).await;
    sync.sync_product(&pid(), Trigger::CatalogChange)
        .await
        .unwrap();
    // THEN only the new link is recorded: a restock switches on the new price alone
    let item = read().await;
    assert_eq!(item.payment_links.len(), 1);
    assert_ne!(item.payment_links[0], old);
    assert_eq!(item.deactivated_links, item.payment_links);
    assert!(!sync.stripe.link_active(&old));
}

#[tokio::test]
async fn a_new_link_for_a_spread_product_is_not_switched_off_as_sold_out() {
    // Its units are in its shards (issue 13 §4): the item's own units are 0, the level is not.
    let sync = setup(&[("s1", 12)]);
    stockbridge_app::shards::spread(&sync.store, &store("s1"), &pid(), 4, Timestamp(1))
        .await
        .unwrap();
    change(&sync, details(1, 1500, &["s1"])).await;
    sync.sync_product(&pid(), Trigger::CatalogChange)
        .await
        .unwrap();
    let item = item_in_s1(&sync).await;
    assert_eq!((item.available, item.level().available), (0, 12));
    assert!(
        sync.stripe.link_active(&item.payment_links[0]),
        "still on sale"
    );
}

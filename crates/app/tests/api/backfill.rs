//! Backfill against the in-memory ports: resumable, no duplicates, the cursor set first.

use stockbridge_app::backfill::BackfillOptions;
use stockbridge_app::memory::{MemoryPayments, MemoryPublisher, MemoryStore, TickingClock};
use stockbridge_app::orders::{InventoryConfig, Services};
use stockbridge_app::ports::{CatalogStore, CursorStore, InventoryStore, LoggedEvent};
use stockbridge_domain::{ProductId, StoreId, StripeEventId};

fn options() -> BackfillOptions {
    BackfillOptions {
        store: StoreId::parse("s1").unwrap(),
        default_stock: 7,
        restart: false,
    }
}

type App = Services<MemoryStore, MemoryPublisher, MemoryPayments, TickingClock>;

fn services(store: &MemoryStore, payments: &MemoryPayments) -> App {
    Services::new(
        store.clone(),
        MemoryPublisher::default(),
        payments.clone(),
        TickingClock::default(),
        InventoryConfig {
            filter: stockbridge_app::decode::EventFilter {
                source_prefix: "aws.partner/stripe.com/".into(),
                livemode: false,
            },
            default_store: StoreId::parse("s1").unwrap(),
            max_attempts: 5,
        },
    )
}

/// The catalog and stock a finished backfill of 250 products (every tenth with a link of the
/// merchant's) leaves, with nothing created at Stripe.
async fn backfilled_as_the_account_was(store: &MemoryStore, payments: &MemoryPayments) {
    let catalog = store.catalog();
    assert_eq!(catalog.entries.len(), 250);
    let tee = &catalog.entries[&ProductId::parse("prod_010").unwrap()];
    assert_eq!(tee.details.price.amount, 510);
    assert_eq!(
        tee.mapping.synced_revision, tee.details.revision,
        "nothing for the sync to do"
    );
    assert_eq!(tee.mapping.links.len(), 1);
    let item = store
        .item(
            &StoreId::parse("s1").unwrap(),
            &ProductId::parse("prod_010").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item.available, 7);
    assert_eq!(item.payment_links.len(), 1);
    // The merchant's link is adopted, not made by stockbridge: no terms, its orders list
    // their line items (it may sell more than one unit, or optional items).
    assert_eq!(
        store.link_terms(&item.payment_links[0]).await.unwrap(),
        None
    );
    // Nothing was created at Stripe.
    let calls = payments.calls.lock().unwrap().clone();
    assert!(!calls.iter().any(|c| c.starts_with("create_")), "{calls:?}");
    assert_eq!(store.snapshot().items.len(), 250);
}

#[tokio::test]
async fn an_interrupted_backfill_resumes_without_duplicates() {
    let store = MemoryStore::default();
    let payments = MemoryPayments::default();
    let cursor = &store.cursor;
    let events = &payments.event_log;
    events.events.lock().unwrap().push(LoggedEvent {
        id: StripeEventId::parse("evt_before").unwrap(),
        created: 100,
        event: serde_json::json!({"id": "evt_before", "type": "checkout.session.completed"}),
    });
    for i in 0..250 {
        let price = payments.add_stripe_product(&format!("prod_{i:03}"), &format!("P{i}"), 500 + i);
        if i % 10 == 0 {
            payments.add_foreign_link(
                &format!("plink_{i:03}"),
                &price,
                &ProductId::parse(format!("prod_{i:03}")).unwrap(),
            );
        }
    }
    let inventory = services(&store, &payments);

    // The second page of products fails: the first run stops half-way.
    *payments.pages_before_failure.lock().unwrap() = Some(1);
    let err = inventory.backfill(&options(), |_| {}).await.unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    assert_eq!(store.catalog().entries.len(), 100);
    let started = cursor.cursor().await.unwrap().unwrap();
    assert_eq!(
        (started.created, started.event_id.clone()),
        (1_761_935_276, None),
        "the cursor is the backfill's start: later events are replayed"
    );

    // An event after the start must not move the cursor on resume.
    events.events.lock().unwrap().push(LoggedEvent {
        id: StripeEventId::parse("evt_during").unwrap(),
        created: 200,
        event: serde_json::json!({"id": "evt_during", "type": "checkout.session.completed"}),
    });
    let mut pages = 0;
    let done = inventory
        .backfill(&options(), |_| pages += 1)
        .await
        .unwrap();
    assert_eq!(done.phase, "done");
    assert_eq!((done.products, done.existing, done.skipped), (250, 0, 0));
    assert_eq!(done.links, 25);
    assert!(pages >= 3);
    assert_eq!(cursor.cursor().await.unwrap(), Some(started));

    backfilled_as_the_account_was(&store, &payments).await;

    // Running it again after it finished does nothing new.
    let again = inventory.backfill(&options(), |_| {}).await.unwrap();
    assert_eq!(again, done);
    assert!(
        store
            .entry(&ProductId::parse("prod_249").unwrap())
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn backfill_attaches_only_active_links_on_the_current_price() {
    let store = MemoryStore::default();
    let payments = MemoryPayments::default();
    let product = ProductId::parse("prod_tee").unwrap();
    let price = payments.add_stripe_product("prod_tee", "Tee", 2500);
    payments.add_foreign_link("plink_live", &price, &product);
    payments.add_foreign_link("plink_paused", &price, &product);
    let old = stockbridge_domain::PriceId::parse("price_old").unwrap();
    payments.add_foreign_link("plink_old_price", &old, &product);
    // Switched off by the merchant: not stockbridge's to switch on.
    payments.links.lock().unwrap().insert(
        stockbridge_domain::PaymentLinkId::parse("plink_paused").unwrap(),
        false,
    );
    let inventory = services(&store, &payments);
    let done = inventory.backfill(&options(), |_| {}).await.unwrap();
    assert_eq!((done.links, done.links_skipped), (1, 2), "{done:?}");
    let item = store
        .item(&StoreId::parse("s1").unwrap(), &product)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        item.payment_links
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>(),
        ["plink_live"]
    );
}

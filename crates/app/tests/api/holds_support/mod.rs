//! Shared set-up of the checkout-API tests (`holds.rs`, `lifecycle.rs`).
#![allow(dead_code)]

use stockbridge_app::memory::{MemoryPayments, MemoryPublisher, MemoryStore, TickingClock};
use stockbridge_app::orders::{InventoryConfig, Services};
use stockbridge_app::ports::CatalogStore;
use stockbridge_app::reservations::{ReservationReply, ReservationRequest};
use stockbridge_domain::{
    CatalogItem, Money, OrderLine, ProductDetails, ProductId, Quantity, StoreId, Timestamp,
};

/// Time a checkout may spend on conflicts.
pub const TIME: std::time::Duration = std::time::Duration::from_secs(10);

pub type Inv = Services<MemoryStore, MemoryPublisher, MemoryPayments, TickingClock>;

pub fn pid(p: &str) -> ProductId {
    ProductId::parse(p).unwrap()
}

pub fn s1() -> StoreId {
    StoreId::parse("s1").unwrap()
}

pub async fn setup(stock: u64) -> (Inv, MemoryStore, MemoryPayments, TickingClock) {
    let store = MemoryStore::default();
    let payments = MemoryPayments::default();
    let clock = TickingClock::default();
    store.put_item(CatalogItem {
        store_id: s1(),
        product_id: pid("tee"),
        name: "Tee".into(),
        available: stock,
        held: 0,
        version: 1,
        payment_links: vec![],
        deactivated_links: vec![],
        updated_at: Timestamp(0),
        managed_since: stockbridge_domain::Timestamp(0),
        unrecorded_take: None,
        spread: None,
        low_stock: None,
    });
    set_price(&store, 1500).await;
    let inv = Services::new(
        store.clone(),
        MemoryPublisher::default(),
        payments.clone(),
        clock.clone(),
        InventoryConfig {
            filter: stockbridge_app::decode::EventFilter {
                source_prefix: "aws.partner/stripe.com/".into(),
                livemode: false,
            },
            default_store: s1(),
            max_attempts: 50,
        },
    );
    (inv, store, payments, clock)
}

pub fn request(q: u64) -> ReservationRequest {
    ReservationRequest {
        store_id: s1(),
        lines: vec![OrderLine {
            product_id: pid("tee"),
            quantity: Quantity::new(q).unwrap(),
        }],
        customer_email: None,
        client: None,
    }
}

pub fn intent_event(kind: &str, pi: &str, hold: &str, evt: &str) -> serde_json::Value {
    serde_json::json!({
        "version": "0", "id": format!("eb-{evt}"), "detail-type": kind,
        "source": "aws.partner/stripe.com/ed_test", "account": "1", "time": "2026-11-23T00:00:00Z",
        "region": "us-east-1", "resources": [],
        "detail": {"id": evt, "object": "event", "type": kind, "livemode": false, "created": 1,
            "data": {"object": {"id": pi, "object": "payment_intent", "metadata": {"hold_id": hold}}}}
    })
}

pub fn held(r: &ReservationReply) -> (String, String, u64) {
    match r {
        ReservationReply::Held {
            hold_id,
            client_secret,
            amount,
            ..
        } => (hold_id.to_string(), client_secret.0.clone(), *amount),
        other => panic!("not held: {other:?}"),
    }
}

/// Sets the tee's catalog price (minor units, usd).
pub async fn set_price(store: &MemoryStore, amount: u64) {
    let current = store.entries(&[pid("tee")]).await.unwrap();
    let revision = current.get(&pid("tee")).map(|e| e.details.revision);
    store
        .put_details(
            &ProductDetails {
                product_id: pid("tee"),
                name: "Tee".into(),
                description: None,
                images: vec![],
                price: Money::new(amount, "usd").unwrap(),
                active: true,
                metadata: Default::default(),
                stores: [s1()].into_iter().collect(),
                revision: revision.map_or(1, |r| r + 1),
                updated_at: Timestamp(0),
            },
            revision,
        )
        .await
        .unwrap();
}

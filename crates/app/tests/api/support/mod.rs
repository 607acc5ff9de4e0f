//! Shared by the handler-tier tests of the boundary and the replay: a world of in-memory ports
//! whose items carry their management boundary, and the sample `checkout.session.completed`.
#![allow(dead_code)]

use serde_json::{Value, json};
use stockbridge_app::decode::EventFilter;
use stockbridge_app::memory::{MemoryPayments, MemoryPublisher, MemoryStore, TickingClock};
use stockbridge_app::orders::{InventoryConfig, Services};
use stockbridge_app::ports::SessionLine;
use stockbridge_domain::{CatalogItem, OrderId, PaymentLinkId, ProductId, StoreId, Timestamp};

pub type App = Services<MemoryStore, MemoryPublisher, MemoryPayments, TickingClock>;

pub const STORE: &str = "store_chicago";
/// The sample event's `created` (Unix seconds): when its order was paid.
pub const PAID: i64 = 1_761_935_276;

pub struct World {
    pub app: App,
    pub store: MemoryStore,
    pub publisher: MemoryPublisher,
    pub payments: MemoryPayments,
}

/// Items with their stock and management boundary (Unix seconds).
pub fn world(stock: &[(&str, u64, i64)]) -> World {
    let store = MemoryStore::default();
    for (p, n, since) in stock {
        store.put_item(CatalogItem {
            store_id: StoreId::parse(STORE).unwrap(),
            product_id: ProductId::parse(*p).unwrap(),
            name: p.to_string(),
            available: *n,
            held: 0,
            version: 1,
            payment_links: vec![PaymentLinkId::parse(format!("plink_{p}")).unwrap()],
            deactivated_links: vec![],
            updated_at: Timestamp(since * 1000),
            managed_since: Timestamp(since * 1000),
            unrecorded_take: None,
            spread: None,
            low_stock: None,
        });
    }
    let (publisher, payments) = (MemoryPublisher::default(), MemoryPayments::default());
    let config = InventoryConfig {
        filter: EventFilter {
            source_prefix: "aws.partner/stripe.com/".into(),
            livemode: false,
        },
        default_store: StoreId::parse("default").unwrap(),
        max_attempts: 10,
    };
    let app = Services::new(
        store.clone(),
        publisher.clone(),
        payments.clone(),
        TickingClock::default(),
        config,
    );
    World {
        app,
        store,
        publisher,
        payments,
    }
}

pub fn session(w: &World, id: &str, lines: &[(&str, u64)]) {
    w.payments.add_session(
        &OrderId::parse(id).unwrap(),
        lines
            .iter()
            .map(|(p, q)| SessionLine {
                product_id: ProductId::parse(*p).unwrap(),
                quantity: *q,
                amount_total: None,
            })
            .collect(),
    );
}

pub fn completed(event_id: &str, session: &str) -> Value {
    let mut v: Value = serde_json::from_str(include_str!(
        "../../../../../testdata/stripe/eventbridge-envelope.json"
    ))
    .unwrap();
    v["detail"]["id"] = json!(event_id);
    v["detail"]["data"]["object"]["id"] = json!(session);
    v["detail"]["data"]["object"]["payment_status"] = json!("paid");
    v["detail"]["data"]["object"]["payment_intent"] = json!(format!("pi_{session}"));
    v["detail"]["data"]["object"]["metadata"] = json!({"store_id": STORE});
    v
}

pub fn available(w: &World, p: &str) -> u64 {
    w.store.snapshot().items[&(StoreId::parse(STORE).unwrap(), ProductId::parse(p).unwrap())]
        .available
}

pub fn order(w: &World, id: &str) -> Option<stockbridge_domain::OrderRecord> {
    w.store
        .snapshot()
        .orders
        .get(&OrderId::parse(id).unwrap())
        .cloned()
}

//! Benchmark (not a test): stockbridge's own CPU per paid order, with in-memory ports, so only
//! decoding, deciding and effect bookkeeping are measured. Run:
//! `cargo run --release -p stockbridge-app --features memory --example cpu_per_order`.

use std::time::Instant;

use serde_json::json;
use stockbridge_app::decode::EventFilter;
use stockbridge_app::memory::{MemoryPayments, MemoryPublisher, MemoryStore, TickingClock};
use stockbridge_app::orders::{InventoryConfig, Services};
use stockbridge_app::ports::SessionLine;
use stockbridge_domain::{CatalogItem, OrderId, PaymentLinkId, ProductId, StoreId, Timestamp};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let store = MemoryStore::default();
    let payments = MemoryPayments::default();
    store.put_item(CatalogItem {
        store_id: StoreId::parse("s").unwrap(),
        product_id: ProductId::parse("prod_a").unwrap(),
        name: "a".into(),
        available: u64::MAX / 2,
        held: 0,
        version: 1,
        payment_links: vec![PaymentLinkId::parse("plink_a").unwrap()],
        deactivated_links: vec![],
        updated_at: Timestamp(0),
        managed_since: stockbridge_domain::Timestamp(0),
        unrecorded_take: None,
        spread: None,
        low_stock: None,
    });
    let base: serde_json::Value = serde_json::from_str(include_str!(
        "../../../testdata/stripe/eventbridge-envelope.json"
    ))
    .unwrap();
    let events: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let id = format!("cs_{i}");
            payments.add_session(
                &OrderId::parse(id.clone()).unwrap(),
                vec![SessionLine {
                    product_id: ProductId::parse("prod_a").unwrap(),
                    quantity: 1,
                    amount_total: None,
                }],
            );
            let mut e = base.clone();
            e["detail"]["id"] = json!(format!("evt_{i}"));
            e["detail"]["data"]["object"]["id"] = json!(id);
            e["detail"]["data"]["object"]["metadata"] = json!({"store_id": "s"});
            e
        })
        .collect();
    let app = Services::new(
        store.clone(),
        MemoryPublisher::default(),
        payments,
        TickingClock::default(),
        InventoryConfig {
            filter: EventFilter {
                source_prefix: "aws.partner/stripe.com/".into(),
                livemode: false,
            },
            default_store: StoreId::parse("default").unwrap(),
            max_attempts: 10,
        },
    );
    let start = Instant::now();
    for e in &events {
        app.handle(e).await.unwrap();
    }
    let elapsed = start.elapsed();
    assert_eq!(store.snapshot().orders.len(), n);
    println!(
        "{n} paid orders in {elapsed:?}: {:.2} µs per order (decode + decide + commit + effects, in-memory ports)",
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
}

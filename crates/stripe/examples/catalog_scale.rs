//! Benchmark (not a test): the reconciler's catalog check at scale, against the fake Stripe
//! over HTTP with a rate limit, and an in-memory catalog (the DynamoDB adapter itself is
//! tested against moto; moto slows to a crawl past ~10k items, see DEVELOPERS.md).
//!
//! ```text
//! scripts/stack &   # or any running fake Stripe: STOCKBRIDGE_STRIPE_URL=http://127.0.0.1:PORT
//! cargo run --release -p stockbridge-stripe --example catalog_scale -- 10000 25
//! ```
//! Arguments: products (default 10000), the rate budget in requests/s (default 25, Stripe's
//! test-mode limit). The fake is set to reject anything above the budget (429), stockbridge's
//! token bucket is set to the same budget with a burst of 1, so "never above it" is checked by
//! the fake's own counter of rejections.
//!
//! Prints: list requests, products compared per second, that rate as a fraction of the budget
//! (each request compares up to 100 products), rejections by the fake, and memory (VmRSS before
//! the check, VmHWM after: the check's own peak is the difference).

use std::time::{Duration, Instant};

use stockbridge_app::catalog_sync::CatalogSync;
use stockbridge_app::memory::{MemoryStore, TickingClock};
use stockbridge_app::ports::{CatalogStore, StripeCatalog};
use stockbridge_domain::{Money, ProductDetails, ProductId, StoreId, StripeMapping, Timestamp};
use stockbridge_stripe::{RetryPolicy, StripeConfig, StripePayments};

fn control(base: &str, path: &str, body: &str) -> String {
    let out = std::process::Command::new("curl")
        .args([
            "-sf",
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            body,
        ])
        .arg(format!("{base}{path}"))
        .output()
        .expect("curl");
    assert!(out.status.success(), "POST {path} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn get(base: &str, path: &str) -> serde_json::Value {
    let out = std::process::Command::new("curl")
        .args(["-sf"])
        .arg(format!("{base}{path}"))
        .output()
        .expect("curl");
    serde_json::from_slice(&out.stdout).expect("json")
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The catalog the check compares: every bulk product of this run, as the fake lists it, with
/// one in a thousand renamed. Returns the store and how many products it loaded.
async fn load_catalog(base: &str, prefix: &str) -> (MemoryStore, usize) {
    let store = MemoryStore::default();
    let s1 = StoreId::parse("s1").unwrap();
    let lister = StripePayments::new(&StripeConfig {
        max_rps: 1000.0,
        burst: 1000,
        ..StripeConfig::new("sk_test_bench".to_owned().into(), Some(base.to_owned()))
    })
    .unwrap();
    let mine = format!("prod_{prefix}");
    let mut after: Option<ProductId> = None;
    let mut loaded = 0usize;
    loop {
        let page = lister
            .products_page(after.as_ref())
            .await
            .expect("list products");
        for (product, price) in &page.items {
            let Some(price) = price
                .as_ref()
                .filter(|_| product.id.as_str().starts_with(&mine))
            else {
                continue;
            };
            loaded += 1;
            let details = ProductDetails {
                product_id: product.id.clone(),
                name: if loaded.is_multiple_of(1000) {
                    "renamed".into()
                } else {
                    product.name.clone()
                },
                description: None,
                images: vec![],
                price: Money::new(1000, "usd").unwrap(),
                active: true,
                metadata: Default::default(),
                stores: [s1.clone()].into_iter().collect(),
                revision: 1,
                updated_at: Timestamp(0),
            };
            store.put_details(&details, None).await.unwrap();
            let mapping = StripeMapping {
                price_id: Some(price.id.clone()),
                price: Some(details.price.clone()),
                synced_revision: 1,
                version: 1,
                ..StripeMapping::default()
            };
            store.save_mapping(&product.id, &mapping, 0).await.unwrap();
        }
        match (page.has_more, page.items.last()) {
            (true, Some((last, _))) => after = Some(last.id.clone()),
            _ => break,
        }
    }
    (store, loaded)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rps: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(25.0);
    let base = std::env::var("STOCKBRIDGE_STRIPE_URL").expect("STOCKBRIDGE_STRIPE_URL");
    let prefix = format!("b{}x", std::process::id());

    control(&base, "/_test/rate_limit", "{}");
    let t = Instant::now();
    control(
        &base,
        "/_test/products/bulk",
        &format!(
            r#"{{"count": {n}, "prefix": "{prefix}", "unit_amount": 1000, "currency": "usd"}}"#
        ),
    );
    eprintln!("fake: {n} products created in {:.1?}", t.elapsed());

    let stripe = StripePayments::new(&StripeConfig {
        timeout: Duration::from_secs(30),
        retry: RetryPolicy::default(),
        max_rps: rps,
        burst: 1,
        ..StripeConfig::new("sk_test_bench".to_owned().into(), Some(base.clone()))
    })
    .unwrap();
    // The catalog: what the fake has (listed without a rate limit, before the measurement),
    // with one product in a thousand renamed so the check has something to find.
    let (store, loaded) = load_catalog(&base, &prefix).await;
    assert_eq!(loaded, n, "every bulk product listed");
    control(
        &base,
        "/_test/rate_limit",
        // A little burst at the referee absorbs network jitter between two requests sent
        // exactly 1/rps apart; the client itself never bursts (bucket of 1).
        &format!(r#"{{"per_second": {rps}, "burst": 5}}"#),
    );
    let sync = CatalogSync {
        store,
        stripe,
        clock: TickingClock::default(),
    };

    let rss_before = status_kb("VmRSS:");
    let t = Instant::now();
    let report = sync.check_catalog(true, 4, 0, 0).await.expect("check");
    let elapsed = t.elapsed().as_secs_f64();
    let hwm = status_kb("VmHWM:");
    let limiter = get(&base, "/_test/rate_limit");
    control(&base, "/_test/rate_limit", "{}");

    let requests = report.stripe_pages as f64;
    let products_per_s = report.products as f64 / elapsed;
    println!(
        "products={n} budget={rps}/s requests={} elapsed={elapsed:.1}s req/s={:.2} products/s={products_per_s:.0} fraction_of_budget={:.1}% discrepancies={} rejected_by_fake={} rss_before={} MB peak={} MB",
        report.stripe_pages,
        requests / elapsed,
        100.0 * products_per_s / (100.0 * rps),
        report.discrepancies.len(),
        limiter["rejected"],
        rss_before / 1024,
        hwm / 1024,
    );
}

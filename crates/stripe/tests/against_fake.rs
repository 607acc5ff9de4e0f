//! The Stripe adapter over HTTP against the local fake Stripe (devstack/fake_stripe.py, built
//! from Stripe's published fixtures). Run with `scripts/test`.

use std::time::Duration;

use serde_json::{Value, json};
use stockbridge_app::ports::{Payments, PaymentsError};
use stockbridge_domain::{OrderId, PaymentIntentId, PaymentLinkId, RefundRequest};
use stockbridge_stripe::{RetryPolicy, StripeConfig, StripePayments};

fn base() -> String {
    std::env::var("STOCKBRIDGE_STRIPE_URL")
        .expect("STOCKBRIDGE_STRIPE_URL is not set: run scripts/test")
}

fn control(path: &str, body: Value) -> Value {
    let out = std::process::Command::new("curl")
        .args([
            "-sf",
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            &body.to_string(),
            &format!("{}{path}", base()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn requests(prefix: &str) -> Vec<Value> {
    let out = std::process::Command::new("curl")
        .args([
            "-sf",
            &format!("{}/_test/requests?path_prefix={prefix}", base()),
        ])
        .output()
        .unwrap();
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["requests"]
        .as_array()
        .unwrap()
        .clone()
}

fn client() -> StripePayments {
    StripePayments::new(&StripeConfig {
        api_key: "sk_test_adapter".to_owned().into(),
        api_base: Some(base()),
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(50),
        },
        max_rps: 100.0,
        burst: 100,
    })
    .unwrap()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn line_items_are_listed_across_pages() {
    let id = unique("cs_test");
    let lines: Vec<Value> = (0..150)
        .map(|i| json!({"product": format!("prod_{i}"), "quantity": 1 + i % 3, "unit_amount": 500}))
        .collect();
    control(
        "/_test/checkout_sessions",
        json!({"id": id, "payment_status": "paid", "line_items": lines}),
    );
    let got = client()
        .line_items(&OrderId::parse(id.clone()).unwrap())
        .await
        .unwrap();
    assert_eq!(got.len(), 150);
    assert_eq!(got[149].product_id.as_str(), "prod_149");
    assert_eq!(got[4].quantity, 2);
    assert_eq!(
        requests(&format!("/v1/checkout/sessions/{id}/line_items")).len(),
        2,
        "two pages of 100"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_refund_is_made_once_however_often_it_is_sent() {
    let id = unique("cs_test");
    let pi = unique("pi");
    control(
        "/_test/checkout_sessions",
        json!({"id": id, "payment_status": "paid", "payment_intent": pi, "line_items": [{"product": "prod_r", "quantity": 1, "unit_amount": 500}]}),
    );
    let req = RefundRequest {
        order_id: OrderId::parse(id.clone()).unwrap(),
        payment_intent: PaymentIntentId::parse(pi.clone()).unwrap(),
        idempotency_key: format!("stockbridge-refund-{id}"),
    };
    let c = client();
    let first = c.refund(&req).await.unwrap();
    let again = c.refund(&req).await.unwrap();
    assert_eq!(first, again, "the idempotency key replays the first refund");
    let sent = requests("/v1/refunds");
    let mine: Vec<&Value> = sent
        .iter()
        .filter(|r| r["idempotency_key"] == json!(req.idempotency_key))
        .collect();
    assert_eq!(mine.len(), 2);
    assert_eq!(mine[1]["replayed"], json!(true));
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn server_errors_are_retried_and_a_refusal_is_not() {
    let id = unique("cs_test");
    control(
        "/_test/checkout_sessions",
        json!({"id": id, "payment_status": "paid", "line_items": [{"product": "prod_f", "quantity": 1, "unit_amount": 500}]}),
    );
    control(
        "/_test/faults",
        json!({"path_regex": format!("/v1/checkout/sessions/{id}/line_items"), "status": 500, "count": 2}),
    );
    let got = client()
        .line_items(&OrderId::parse(id.clone()).unwrap())
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        requests(&format!("/v1/checkout/sessions/{id}/line_items")).len(),
        3
    );
    control(
        "/_test/faults",
        json!({"path_regex": format!("/v1/checkout/sessions/{id}/line_items"), "status": 429, "count": 10}),
    );
    let err = client()
        .line_items(&OrderId::parse(id.clone()).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, PaymentsError::RateLimited { .. }), "{err}");
    let missing = client()
        .line_items(&OrderId::parse("cs_test_missing").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(missing, PaymentsError::NotFound { .. }) && !missing.is_retryable(),
        "{missing}"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_payment_link_is_switched_off_and_on() {
    let product = control(
        "/_test/products",
        json!({"name": "Mug", "unit_amount": 1200, "currency": "usd"}),
    );
    let pid = product["product"]["id"].as_str().unwrap().to_owned();
    let link = control("/_test/payment_links", json!({"product": pid}));
    let lid = PaymentLinkId::parse(link["id"].as_str().unwrap()).unwrap();
    let c = client();
    c.set_link_active(&lid, false, Some("Sold out"))
        .await
        .unwrap();
    let state = |l: &PaymentLinkId| {
        let out = std::process::Command::new("curl")
            .args(["-sf", &format!("{}/_test/state", base())])
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["payment_links"][l.as_str()].clone()
    };
    assert_eq!(state(&lid)["active"], json!(false));
    assert_eq!(state(&lid)["inactive_message"], json!("Sold out"));
    c.set_link_active(&lid, true, None).await.unwrap();
    assert_eq!(state(&lid)["active"], json!(true));
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_payment_link_summary_has_its_url_price_and_product() {
    use stockbridge_app::ports::LinkDirectory;
    let product = control(
        "/_test/products",
        json!({"name": "Tote", "unit_amount": 1800, "currency": "eur"}),
    );
    let price = product["price"]["id"].as_str().unwrap().to_owned();
    let link = control("/_test/payment_links", json!({"price": price}));
    let lid = PaymentLinkId::parse(link["id"].as_str().unwrap()).unwrap();
    let s = client().link_summary(&lid).await.unwrap();
    assert_eq!(s.url, link["url"].as_str().unwrap());
    assert!(s.active);
    assert_eq!(
        (s.unit_amount, s.currency.as_deref()),
        (Some(1800), Some("eur"))
    );
    assert_eq!(s.product_name.as_deref(), Some("Tote"));
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_rate_limit_answer_is_retried_no_sooner_than_retry_after() {
    use stockbridge_app::ports::LinkDirectory;
    let p = client();
    let product = control(
        "/_test/products",
        json!({"name": "Retry-After", "unit_amount": 100, "currency": "usd"}),
    );
    let pid = product["product"]["id"].as_str().unwrap().to_owned();
    let link = control("/_test/payment_links", json!({"product": pid}));
    let id = PaymentLinkId::parse(link["id"].as_str().unwrap()).unwrap();
    control(
        "/_test/faults",
        json!({"path_regex": format!("^/v1/payment_links/{id}$"), "status": 429, "count": 1, "retry_after": 1}),
    );
    let started = std::time::Instant::now();
    p.set_link_active(&id, false, None).await.unwrap();
    // The backoff ceiling here is 50 ms: only Retry-After makes it wait a whole second.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(p.link_active(&id).await.unwrap(), Some(false));
}

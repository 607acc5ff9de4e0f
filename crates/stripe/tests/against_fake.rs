//! The Stripe adapter over HTTP against the local fake Stripe (devstack/fake_stripe/, built
//! from Stripe's published fixtures). Run with `scripts/test`.

use std::time::Duration;

use serde_json::{Value, json};
use stockbridge_app::ports::{LinkSwitch, Payments, PaymentsError, SessionLog, SessionPayment};
use stockbridge_domain::{OrderId, PaymentIntentId, PaymentLinkId, ProductId, RefundRequest};

mod support;
use support::*;

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
        amount: None,
        idempotency_key: format!("stockbridge-refund-{id}"),
    };
    let c = client();
    let first = c.refund(&req).await.unwrap();
    let again = c.refund(&req).await.unwrap();
    assert_eq!(first, again, "the order's refund is the same refund");
    let sent = requests("/v1/refunds");
    let mine: Vec<&Value> = sent
        .iter()
        .filter(|r| r["idempotency_key"] == json!(req.idempotency_key))
        .collect();
    assert_eq!(
        mine.len(),
        1,
        "the second call finds the order's refund and sends none"
    );
    // Past the key's 24 hours (a new key): the order's refund is found, not made again.
    let later = RefundRequest {
        amount: Some(200),
        idempotency_key: format!("stockbridge-refund-{id}-after-a-day"),
        ..req
    };
    assert_eq!(c.refund(&later).await.unwrap(), first);
    let made: Vec<Value> = requests("/v1/refunds")
        .into_iter()
        .filter(|r| {
            r["method"] == json!("POST") && r["idempotency_key"] == json!(later.idempotency_key)
        })
        .collect();
    assert!(made.is_empty(), "no second refund was sent: {made:?}");
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
    let posts = || {
        requests(&format!("/v1/payment_links/{lid}"))
            .iter()
            .filter(|r| r["method"] == json!("POST"))
            .count()
    };
    assert_eq!(
        c.set_link_active(&lid, false, Some("Sold out"))
            .await
            .unwrap(),
        LinkSwitch::Switched
    );
    assert_eq!(
        c.set_link_active(&lid, false, Some("Sold out"))
            .await
            .unwrap(),
        LinkSwitch::Unchanged {
            inactive_message: Some("Sold out".into()),
            at_guard_limit: false,
        },
        "found off, with the message that says who switched it"
    );
    assert_eq!(posts(), 1, "a switch that changes nothing is never sent");
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
    assert_eq!(
        state(&lid)["inactive_message"],
        Value::Null,
        "switching on clears the sold-out message: a later switch-off by a person has none"
    );
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
    assert!(!p.link_state(&id).await.unwrap().unwrap().active);
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_hold_payment_intent_is_created_once_per_key_captured_once_and_cancel_refused_after() {
    use stockbridge_app::ports::NewPaymentIntent;
    let p = client();
    let hold = OrderId::parse(unique("hold_")).unwrap();
    let request = NewPaymentIntent {
        amount: 3000,
        currency: "usd".into(),
        hold_id: hold.clone(),
        store_id: stockbridge_domain::StoreId::parse("s1").unwrap(),
        receipt_email: Some("buyer@example.com".into()),
        idempotency_key: format!("stockbridge-checkout-{hold}"),
    };
    let a = p.create_payment_intent(&request).await.unwrap();
    let b = p.create_payment_intent(&request).await.unwrap();
    assert_eq!(a, b, "the same key gives the same PaymentIntent");
    assert!(a.client_secret.starts_with(&format!("{}_secret_", a.id)));
    let pi: Value = std::process::Command::new("curl")
        .args(["-sf", "-H", "Authorization: Bearer sk_test_adapter"])
        .arg(format!("{}/v1/payment_intents/{}", base(), a.id))
        .output()
        .map(|o| serde_json::from_slice(&o.stdout).unwrap())
        .unwrap();
    assert_eq!(pi["capture_method"], "manual");
    assert_eq!(pi["metadata"]["hold_id"], hold.as_str());
    assert_eq!(pi["amount"], 3000);
    // Capturing before authorisation is refused for the state.
    assert!(matches!(
        p.capture_payment_intent(&a.id, "k-early").await,
        Err(PaymentsError::UnexpectedState { .. })
    ));
    control(
        &format!("/_test/payment_intents/{}/authorize", a.id),
        json!({}),
    );
    let key = format!("stockbridge-capture-{hold}");
    p.capture_payment_intent(&a.id, &key).await.unwrap();
    p.capture_payment_intent(&a.id, &key).await.unwrap();
    let captures: Vec<_> = requests(&format!("/v1/payment_intents/{}/capture", a.id))
        .into_iter()
        .filter(|r| r["status"] == 200)
        .collect();
    assert_eq!(captures.len(), 2);
    assert_eq!(
        captures
            .iter()
            .filter(|r| r["replayed"] == json!(true))
            .count(),
        1,
        "the second is a replay"
    );
    assert!(matches!(
        p.cancel_payment_intent(&a.id, "k-cancel").await,
        Err(PaymentsError::UnexpectedState { .. })
    ));
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn catalog_objects_are_created_with_our_ids_and_listed() {
    use stockbridge_app::ports::StripeCatalog;
    use stockbridge_domain::{Money, ProductFields, StoreId};
    let p = client();
    let id = ProductId::parse(unique("cat_")).unwrap();
    let fields = ProductFields {
        name: "Adapter tee".into(),
        description: Some("Soft".into()),
        images: vec!["https://img.example/t.png".into()],
        active: true,
        metadata: [("color".to_owned(), "blue".to_owned())]
            .into_iter()
            .collect(),
        metadata_removed: Default::default(),
    };
    let made = p
        .create_product(&id, &fields, &format!("k-{id}"))
        .await
        .unwrap();
    assert_eq!(
        (made.id.clone(), made.name.as_str()),
        (id.clone(), "Adapter tee")
    );
    let price = p
        .create_price(&id, &Money::new(1234, "eur").unwrap(), &format!("kp-{id}"))
        .await
        .unwrap();
    assert_eq!(
        (price.amount, price.currency.as_str(), price.active),
        (Some(1234), "eur", true)
    );
    let mut renamed = fields.clone();
    renamed.name = "Renamed".into();
    renamed.metadata.clear();
    renamed.metadata_removed = ["color".to_owned()].into_iter().collect();
    let updated = p
        .update_product(&id, &renamed, Some(&price.id), &format!("ku-{id}"))
        .await
        .unwrap();
    assert_eq!(updated.name, "Renamed");
    assert_eq!(updated.default_price.as_ref(), Some(&price.id));
    assert!(
        !updated.metadata.contains_key("color"),
        "removed keys are unset"
    );
    let store = StoreId::parse("s1").unwrap();
    let link = p
        .create_link(&price.id, &store, &id, &format!("kl-{id}"))
        .await
        .unwrap();
    assert_eq!(link.prices, vec![price.id.clone()]);
    assert_eq!(link.products, vec![id.clone()]);
    assert_eq!(link.store_id.as_ref(), Some(&store));
    let read = p.link(&link.id).await.unwrap().unwrap();
    assert_eq!(read.prices, vec![price.id.clone()]);
    assert_eq!(p.active_prices(&id).await.unwrap().len(), 1);
    p.archive_price(&price.id).await.ok();
    // Stripe refuses to archive a default price; the sync moves the default first.
    let page = p.prices_page(None).await.unwrap();
    assert!(page.items.len() <= 100);
    assert!(
        p.product(&ProductId::parse(unique("none_")).unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_delayed_payment_is_read_as_pending_paid_or_failed() {
    let c = client();
    let mut seen = Vec::new();
    for outcome in ["succeeded", "failed", ""] {
        let id = unique("cs_test");
        control(
            "/_test/checkout_sessions",
            json!({"id": id, "payment_status": "unpaid", "payment_intent": unique("pi"),
                   "line_items": [{"product": "prod_debit", "quantity": 1, "unit_amount": 900}]}),
        );
        let session = OrderId::parse(id.clone()).unwrap();
        assert_eq!(
            c.session_payment(&session).await.unwrap(),
            SessionPayment::Pending
        );
        if !outcome.is_empty() {
            control(
                &format!("/_test/checkout_sessions/{id}/settle"),
                json!({"outcome": outcome}),
            );
        }
        seen.push(c.session_payment(&session).await.unwrap());
    }
    assert_eq!(
        seen,
        [
            SessionPayment::Paid,
            SessionPayment::Failed,
            SessionPayment::Pending
        ]
    );
}

//! The edge with in-memory ports: only a delivery signed with the endpoint's secret, recent,
//! unaltered and of a sane size reaches the use case; a replayed one changes nothing more.

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use base64::Engine;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use stockbridge_app::memory::{
    MemoryCatalogQueue, MemoryPayments, MemoryPublisher, MemoryStore, TickingClock,
};
use stockbridge_app::orders::Services;
use stockbridge_app::ports::{ParkingLot, SessionLine};
use stockbridge_domain::{OrderId, ProductId, StoreId};

use super::{Endpoint, handle};
use crate::signature::{Secrets, sign};

const SECRET: &str = "whsec_test_endpoint";
/// The clock's start (TickingClock::default), in seconds: "now" for the signatures.
const NOW: i64 = 1_761_935_276;

struct Bed {
    services: Services<MemoryStore, MemoryPublisher, MemoryPayments, TickingClock>,
    store: MemoryStore,
    payments: MemoryPayments,
    queue: MemoryCatalogQueue,
    secrets: Secrets,
}

fn bed() -> Bed {
    let store = MemoryStore::default();
    store.put_item(stockbridge_app::memory::test_item(
        &StoreId::parse("store_chicago").unwrap(),
        &ProductId::parse("tee").unwrap(),
        "Tee",
        5,
    ));
    let payments = MemoryPayments::default();
    payments.add_session(
        &OrderId::parse("cs_1").unwrap(),
        vec![SessionLine {
            product_id: ProductId::parse("tee").unwrap(),
            quantity: 2,
            amount_total: None,
        }],
    );
    let services = Services::new(
        store.clone(),
        MemoryPublisher::default(),
        payments.clone(),
        TickingClock::default(),
        stockbridge_app::memory::inventory_config(),
    );
    Bed {
        services,
        store,
        payments,
        queue: MemoryCatalogQueue::default(),
        secrets: Secrets::parse(SECRET).unwrap(),
    }
}

/// Stripe's sample `checkout.session.completed`, paid, for `cs_1` in store_chicago.
fn completed() -> String {
    let envelope: Value = serde_json::from_str(include_str!(
        "../../../../testdata/stripe/eventbridge-envelope.json"
    ))
    .unwrap();
    let mut event = envelope["detail"].clone();
    event["data"]["object"]["id"] = json!("cs_1");
    event["data"]["object"]["payment_status"] = json!("paid");
    event["data"]["object"]["payment_link"] = Value::Null;
    event["data"]["object"]["metadata"] = json!({"store_id": "store_chicago"});
    event.to_string()
}

fn request(
    method: &str,
    body: &str,
    signature: Option<String>,
    base64: bool,
) -> LambdaEvent<LambdaFunctionUrlRequest> {
    let mut headers = json!({"content-type": "application/json"});
    if let Some(s) = signature {
        headers["stripe-signature"] = json!(s);
    }
    let body = if base64 {
        base64::engine::general_purpose::STANDARD.encode(body)
    } else {
        body.to_owned()
    };
    let req: LambdaFunctionUrlRequest = serde_json::from_value(json!({
        "version": "2.0", "rawPath": "/", "rawQueryString": "", "headers": headers,
        "requestContext": {"accountId": "anonymous", "apiId": "x", "domainName": "x",
            "domainPrefix": "x", "requestId": "r1", "routeKey": "$default", "stage": "$default",
            "time": "07/Dec/2026:04:00:00 +0000", "timeEpoch": 1_796_000_000_000_i64,
            "http": {"method": method, "path": "/", "protocol": "HTTP/1.1",
                     "sourceIp": "192.0.2.7", "userAgent": "Stripe/1.0"}},
        "body": body, "isBase64Encoded": base64
    }))
    .unwrap();
    let mut context = Context::default();
    context.request_id = "req-webhook".into();
    LambdaEvent::new(req, context)
}

fn signed(body: &str, t: i64) -> Option<String> {
    Some(format!(
        "t={t},v1={}",
        sign(SECRET, t, body.as_bytes()).unwrap()
    ))
}

async fn deliver(b: &Bed, event: LambdaEvent<LambdaFunctionUrlRequest>) -> (i64, Value) {
    deliver_max(b, event, 262_144).await
}

async fn deliver_max(
    b: &Bed,
    event: LambdaEvent<LambdaFunctionUrlRequest>,
    max: usize,
) -> (i64, Value) {
    let endpoint = Endpoint {
        secrets: &b.secrets,
        catalog: &b.queue,
        max_body_bytes: max,
    };
    let r: LambdaFunctionUrlResponse = handle(&b.services, &endpoint, event).await.unwrap();
    (
        r.status_code,
        serde_json::from_str(r.body.as_deref().unwrap()).unwrap(),
    )
}

fn available(b: &Bed) -> u64 {
    b.store.snapshot().items[&(
        StoreId::parse("store_chicago").unwrap(),
        ProductId::parse("tee").unwrap(),
    )]
        .available
}

#[tokio::test]
async fn a_signed_delivery_is_applied_and_its_replay_changes_nothing() {
    let b = bed();
    let body = completed();
    let (status, answer) = deliver(&b, request("POST", &body, signed(&body, NOW), false)).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("applied")));
    assert_eq!(available(&b), 3);
    // The same delivery again (Stripe's retry, or someone replaying it within the window).
    let (status, _) = deliver(&b, request("POST", &body, signed(&body, NOW), false)).await;
    assert_eq!(status, 200);
    assert_eq!(available(&b), 3);
    // Base64-encoded by the Function URL: the signature is over the decoded bytes.
    let (status, _) = deliver(&b, request("POST", &body, signed(&body, NOW), true)).await;
    assert_eq!(status, 200);
    assert_eq!(available(&b), 3);
}

#[tokio::test]
async fn a_wrong_stale_missing_or_altered_signature_is_a_400_and_touches_nothing() {
    let b = bed();
    let body = completed();
    let wrong = Some(format!(
        "t={NOW},v1={}",
        sign("whsec_someone_else", NOW, body.as_bytes()).unwrap()
    ));
    let mut altered = body.clone().into_bytes();
    let at = body.find("\"paid\"").unwrap() + 1;
    altered[at] = b'P'; // one byte
    let altered = String::from_utf8(altered).unwrap();
    for req in [
        request("POST", &body, wrong, false),
        request("POST", &body, signed(&body, NOW - 301), false),
        request("POST", &body, None, false),
        request("POST", &altered, signed(&body, NOW), false),
    ] {
        let (status, answer) = deliver(&b, req).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("bad_signature"))
        );
        assert!(!answer.to_string().contains("whsec"), "{answer}");
    }
    assert_eq!(available(&b), 5);
    assert!(b.payments.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_oversized_body_or_another_method_is_refused_before_the_signature() {
    let b = bed();
    let body = completed();
    let (status, _) = deliver_max(&b, request("POST", &body, signed(&body, NOW), false), 100).await;
    assert_eq!(status, 413);
    let (status, _) = deliver(&b, request("GET", "", None, false)).await;
    assert_eq!(status, 405);
    assert_eq!(available(&b), 5);
}

#[tokio::test]
async fn what_may_pass_later_is_a_500_and_what_never_can_is_parked_and_a_200() {
    let b = bed();
    let thin = json!({"id": "evt_thin", "object": "v2.core.event", "type":
        "v1.checkout.session.completed", "created": "2025-10-31T18:27:56Z", "livemode": false,
        "related_object": {"id": "cs_1", "type": "checkout.session", "url": "/v1/checkout/sessions/cs_1"}})
    .to_string();
    b.payments
        .fail_objects
        .store(1, std::sync::atomic::Ordering::SeqCst);
    // The session is not known to the fake at all after the outage: first the outage (500).
    let (status, answer) = deliver(&b, request("POST", &thin, signed(&thin, NOW), false)).await;
    assert_eq!(status, 500);
    assert!(!answer.to_string().contains("injected"), "{answer}");
    let mut bad: Value = serde_json::from_str(&completed()).unwrap();
    bad["data"]["object"]
        .as_object_mut()
        .unwrap()
        .remove("payment_status");
    let bad = bad.to_string();
    let (status, answer) = deliver(&b, request("POST", &bad, signed(&bad, NOW), false)).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("parked")));
    assert_eq!(
        b.store.parked().await.unwrap()[0].id,
        "event:evt_1SAMPLEa1b2c3"
    );
    assert_eq!(available(&b), 5);
}

#[tokio::test]
async fn a_ping_is_answered_healthy_and_a_catalog_event_is_queued() {
    let b = bed();
    let ping = json!({"id": "evt_p", "object": "v2.core.event", "type":
        "v2.core.event_destination.ping", "created": "2025-10-31T18:27:56Z",
        "related_object": {"id": "ed_1", "type": "v2.core.event_destination", "url": "/v2/x"}})
    .to_string();
    let (status, answer) = deliver(&b, request("POST", &ping, signed(&ping, NOW), false)).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("healthy")));
    let product = json!({"id": "evt_c", "object": "event", "type": "product.updated",
        "livemode": false, "data": {"object": {"id": "tee"}}})
    .to_string();
    let (status, answer) =
        deliver(&b, request("POST", &product, signed(&product, NOW), false)).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("queued_for_catalog_sync"))
    );
    assert_eq!(b.queue.sent(), vec![product]);
}

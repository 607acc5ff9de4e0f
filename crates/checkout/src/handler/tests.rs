//! The edge around the use case, with in-memory ports: a cart for a product that is not in
//! the catalog is answered by the use case, a bad request never reaches it.

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use stockbridge_app::memory::{MemoryPayments, MemoryPublisher, MemoryStore, TickingClock};
use stockbridge_app::orders::Services;
use stockbridge_app::reservations::HoldLimits;
use stockbridge_bootstrap::CheckoutSettings;

use super::handle;

fn inventory() -> Services<MemoryStore, MemoryPublisher, MemoryPayments, TickingClock> {
    Services::new(
        MemoryStore::default(),
        MemoryPublisher::default(),
        MemoryPayments::default(),
        TickingClock::default(),
        stockbridge_app::memory::inventory_config(),
    )
}

fn post(body: &str) -> LambdaEvent<LambdaFunctionUrlRequest> {
    let req: LambdaFunctionUrlRequest = serde_json::from_value(json!({
        "version": "2.0", "rawPath": "/checkout", "rawQueryString": "",
        "headers": {"content-type": "application/json", "idempotency-key": "key-0123456789"},
        "requestContext": {"accountId": "anonymous", "apiId": "x", "domainName": "x",
            "domainPrefix": "x", "requestId": "r1", "routeKey": "$default", "stage": "$default",
            "time": "07/Dec/2026:04:00:00 +0000", "timeEpoch": 1_796_000_000_000_i64,
            "http": {"method": "POST", "path": "/checkout", "protocol": "HTTP/1.1",
                     "sourceIp": "192.0.2.7", "userAgent": "test"}},
        "body": body, "isBase64Encoded": false
    }))
    .unwrap();
    let mut context = Context::default();
    context.request_id = "req-edge".into();
    context.deadline = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
        + 15_000;
    LambdaEvent::new(req, context)
}

fn settings() -> CheckoutSettings {
    CheckoutSettings {
        limits: HoldLimits::default(),
        allowed_origins: vec![],
        max_body_bytes: 16_384,
    }
}

#[tokio::test]
async fn a_cart_the_catalog_does_not_sell_is_refused_by_the_use_case_with_the_field() {
    let cart = r#"{"store_id": "s1", "items": [{"product_id": "prod_nowhere", "quantity": 1}]}"#;
    let r = handle(&inventory(), &settings(), None, post(cart))
        .await
        .unwrap();
    let body: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
    assert_eq!(r.status_code, 400, "{body}");
    assert_eq!(body["field"], "items[0].product_id", "{body}");
}

#[tokio::test]
async fn a_bad_body_never_reaches_the_use_case() {
    let r = handle(&inventory(), &settings(), None, post("not json"))
        .await
        .unwrap();
    assert_eq!(r.status_code, 400);
}

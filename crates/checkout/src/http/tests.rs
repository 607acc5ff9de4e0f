//! The HTTP edge's checks and answers, from Function URL requests (payload 2.0).

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use aws_lambda_events::http::HeaderMap;
use serde_json::{Value, json};
use stockbridge_app::reservations::{ClientSecret, HoldLimits, ReservationReply};
use stockbridge_bootstrap::CheckoutSettings;
use stockbridge_domain::{OrderId, ProductId, Shortfall, Timestamp};

use super::*;

fn settings() -> CheckoutSettings {
    CheckoutSettings {
        limits: HoldLimits::default(),
        allowed_origins: vec!["https://shop.example".into()],
        max_body_bytes: 200,
    }
}

const CART: &str = r#"{"store_id": "s1", "items": [{"product_id": "prod_tee", "quantity": 1}]}"#;

/// A Function URL request (payload format 2.0).
fn request(
    method: &str,
    path: &str,
    headers: Value,
    body: Option<&str>,
) -> LambdaFunctionUrlRequest {
    serde_json::from_value(json!({
        "version": "2.0", "rawPath": path, "rawQueryString": "", "headers": headers,
        "requestContext": {"accountId": "anonymous", "apiId": "x", "domainName": "x.lambda-url.us-east-1.on.aws",
            "domainPrefix": "x", "requestId": "r1", "routeKey": "$default", "stage": "$default",
            "time": "07/Dec/2026:04:00:00 +0000", "timeEpoch": 1_796_000_000_000_i64,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "192.0.2.7", "userAgent": "test"}},
        "body": body, "isBase64Encoded": false
    }))
    .unwrap()
}

fn json_post(headers: Value, body: &str) -> LambdaFunctionUrlRequest {
    let mut h = json!({"content-type": "application/json", "idempotency-key": "key-0123456789"});
    for (k, v) in headers.as_object().unwrap() {
        h[k] = v.clone();
    }
    request("POST", "/checkout", h, Some(body))
}

fn status(
    r: &Result<
        Accepted,
        Box<aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlResponse>,
    >,
) -> i64 {
    match r {
        Ok(_) => 200,
        Err(answer) => answer.status_code,
    }
}

fn body(r: &aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlResponse) -> Value {
    serde_json::from_str(r.body.as_deref().unwrap_or("null")).unwrap()
}

#[test]
fn an_allowed_origin_gets_its_cors_headers_and_another_origin_a_403() {
    let s = settings();
    let ok = accept(
        &json_post(json!({"origin": "https://shop.example"}), CART),
        &s,
    )
    .unwrap();
    assert_eq!(
        ok.cors["access-control-allow-origin"],
        "https://shop.example"
    );
    assert_eq!(ok.cors["vary"], "Origin");
    assert_eq!(ok.key, "key-0123456789");
    assert!(ok.request.client.is_some(), "the TCP peer is the client");
    let refused = accept(
        &json_post(json!({"origin": "https://evil.example"}), CART),
        &s,
    )
    .unwrap_err();
    assert_eq!(refused.status_code, 403);
    assert!(refused.headers.get("access-control-allow-origin").is_none());
    // A server's call (no Origin) is served, without CORS headers.
    let server = accept(&json_post(json!({}), CART), &s).unwrap();
    assert!(server.cors.is_empty());
    assert!(cors(&["*".into()], &HeaderMap::new()).unwrap().is_empty());
}

#[test]
fn a_preflight_is_answered_204_with_the_methods_and_headers_it_may_use() {
    let r = accept(
        &request(
            "OPTIONS",
            "/checkout",
            json!({"origin": "https://shop.example"}),
            None,
        ),
        &settings(),
    )
    .unwrap_err();
    assert_eq!(r.status_code, 204);
    assert!(r.body.is_none());
    assert_eq!(r.headers["access-control-allow-methods"], "POST, OPTIONS");
    assert_eq!(
        r.headers["access-control-allow-headers"],
        "content-type, idempotency-key"
    );
}

#[test]
fn each_check_answers_with_its_own_status_in_the_order_a_client_can_fix_them() {
    let s = settings();
    assert_eq!(
        status(&accept(
            &request("POST", "/nope", json!({}), Some(CART)),
            &s
        )),
        404
    );
    assert_eq!(
        status(&accept(&request("GET", "/checkout/", json!({}), None), &s)),
        405
    );
    let mut encoded = json_post(json!({}), CART);
    encoded.is_base64_encoded = true;
    assert_eq!(status(&accept(&encoded, &s)), 415);
    assert_eq!(
        status(&accept(&json_post(json!({}), &"x".repeat(201)), &s)),
        413
    );
    assert_eq!(
        status(&accept(
            &json_post(json!({"content-type": "text/plain"}), CART),
            &s
        )),
        415
    );
    let no_key = request(
        "POST",
        "/checkout",
        json!({"content-type": "application/json"}),
        Some(CART),
    );
    let r = accept(&no_key, &s).unwrap_err();
    assert_eq!(
        (r.status_code, body(&r)["field"].clone()),
        (400, json!("Idempotency-Key"))
    );
    let r = accept(
        &json_post(json!({}), r#"{"store_id": "s1", "items": []}"#),
        &s,
    )
    .unwrap_err();
    assert_eq!(r.status_code, 400);
    assert_eq!(body(&r)["error"], "invalid_request");
}

#[test]
fn every_outcome_has_its_answer_and_a_failure_shows_no_internals() {
    let cors = HeaderMap::new();
    let hold = OrderId::parse("hold_1").unwrap();
    let held: Result<ReservationReply, String> = Ok(ReservationReply::Held {
        client_secret: ClientSecret("pi_1_secret_x".into()),
        hold_id: hold.clone(),
        expires_at: Timestamp(1_796_000_900_000),
        amount: 1500,
        currency: "usd".into(),
    });
    let r = answer(held, &cors, "req-1", None);
    assert_eq!(r.status_code, 200);
    assert_eq!(body(&r)["client_secret"], "pi_1_secret_x");
    let short: Result<ReservationReply, String> = Ok(ReservationReply::Short(vec![Shortfall {
        product_id: ProductId::parse("prod_tee").unwrap(),
        requested: 3,
        available: 1,
    }]));
    assert_eq!(answer(short.clone(), &cors, "req-1", None).status_code, 409);
    assert!(
        body(&answer(short.clone(), &cors, "req-1", None))
            .get("waitlist")
            .is_none()
    );
    // With a waitlist, a 409 offers it for what is sold out (none here: one unit is left).
    let store = stockbridge_domain::StoreId::parse("s1").unwrap();
    assert!(
        body(&answer(short, &cors, "req-1", Some(&store)))
            .get("waitlist")
            .is_none()
    );
    let gone: Result<ReservationReply, String> = Ok(ReservationReply::Short(vec![Shortfall {
        product_id: ProductId::parse("prod_tee").unwrap(),
        requested: 1,
        available: 0,
    }]));
    assert_eq!(
        body(&answer(gone, &cors, "req-1", Some(&store)))["waitlist"],
        serde_json::json!({"method": "POST", "path": "/waitlist", "store_id": "s1", "product_ids": ["prod_tee"]})
    );
    let limited: Result<ReservationReply, String> = Ok(ReservationReply::Limited {
        retry_after: 30,
        reason: "too many",
    });
    let r = answer(limited, &cors, "req-1", None);
    assert_eq!(
        (r.status_code, r.headers["retry-after"].to_str().unwrap()),
        (429, "30")
    );
    let refused: Result<ReservationReply, String> = Ok(ReservationReply::Refused(hold.clone()));
    assert_eq!(answer(refused, &cors, "req-1", None).status_code, 402);
    assert_eq!(
        answer(
            Ok::<_, String>(ReservationReply::Released(hold)),
            &cors,
            "req-1",
            None
        )
        .status_code,
        410
    );
    let failed: Result<ReservationReply, String> =
        Err("DynamoDB: arn:aws:dynamodb:us-east-1:123:table/secret-name throttled".into());
    let r = answer(failed, &cors, "req-1", None);
    assert_eq!(
        (r.status_code, r.headers["retry-after"].to_str().unwrap()),
        (503, "1")
    );
    let text = r.body.unwrap();
    assert!(
        !text.contains("arn:") && !text.contains("secret-name") && text.contains("req-1"),
        "{text}"
    );
}

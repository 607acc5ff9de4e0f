//! What thin events need from the Stripe adapter (`StripeObjects`), against the local fake
//! Stripe: a v2 event read back through the adapter's own transport, and a Checkout Session and
//! a PaymentIntent as the JSON the event decoder reads. Run with `scripts/test`.

mod support;

use serde_json::json;
use stockbridge_app::ports::{ObjectKind, PaymentsError, StripeObjects};
use support::*;

/// A paid session (and its PaymentIntent) at the fake.
fn session() -> (String, String) {
    let (id, pi) = (unique("cs_test_obj"), unique("pi_obj"));
    control(
        "/_test/checkout_sessions",
        json!({"id": id, "payment_intent": pi, "payment_status": "paid",
               "metadata": {"store_id": "s1"}, "currency": "usd",
               "line_items": [{"product": "prod_obj", "quantity": 2, "unit_amount": 700}]}),
    );
    (id, pi)
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_session_and_an_intent_read_back_carry_what_the_decoder_reads() {
    let (id, pi) = session();
    let s = client()
        .object(ObjectKind::CheckoutSession, &id)
        .await
        .unwrap();
    assert_eq!(s["id"], json!(id));
    assert_eq!(s["object"], "checkout.session");
    assert_eq!(
        (s["status"].as_str(), s["payment_status"].as_str()),
        (Some("complete"), Some("paid"))
    );
    assert_eq!(s["payment_intent"], json!(pi));
    assert_eq!(s["metadata"]["store_id"], "s1");
    assert_eq!(
        (s["amount_subtotal"].as_i64(), s["currency"].as_str()),
        (Some(1400), Some("usd"))
    );
    assert_eq!(s["livemode"], false);
    assert!(s["created"].as_i64().unwrap() > 1_700_000_000);
    let p = client()
        .object(ObjectKind::PaymentIntent, &pi)
        .await
        .unwrap();
    assert_eq!(
        (p["id"].as_str(), p["object"].as_str()),
        (Some(pi.as_str()), Some("payment_intent"))
    );
    assert_eq!(p["status"], "succeeded");
    assert!(matches!(
        client()
            .object(ObjectKind::CheckoutSession, "cs_test_nobody")
            .await,
        Err(PaymentsError::NotFound { .. })
    ));
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_v2_event_is_read_back_and_an_unsafe_id_is_never_sent() {
    let out = control(
        "/_test/event_generation_failure",
        json!({"related_object": {"id": "cs_test_x", "type": "checkout.session"},
               "event_type": "checkout.session.completed"}),
    );
    let id = out["event"].as_str().unwrap().to_owned();
    let event = client().event(&id).await.unwrap();
    assert_eq!(
        event["type"],
        "v2.core.health.event_generation_failure.resolved"
    );
    assert_eq!(event["data"]["impact"]["related_object"]["id"], "cs_test_x");
    let sent = requests(&format!("/v2/core/events/{id}"));
    assert_eq!(sent.len(), 1);
    assert!(matches!(
        client().event("evt_x/../../v1/refunds").await,
        Err(PaymentsError::Invalid { .. })
    ));
    assert!(matches!(
        client().event("evt_missing").await,
        Err(PaymentsError::NotFound { .. })
    ));
}

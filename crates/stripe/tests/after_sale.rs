//! Finding the order of a refunded or disputed payment, and reading a charge and a dispute back,
//! against the local fake Stripe (devstack/fake_stripe/charges.py).

use serde_json::json;
use stockbridge_app::ports::{NewPaymentIntent, ObjectKind, Payments, StripeObjects};
use stockbridge_domain::{ChargeId, OrderId, PaymentIntentId, StoreId};

mod support;
use support::*;

/// A paid session made through the fake's test API: (session id, PaymentIntent, charge).
fn paid_session() -> (String, String, String) {
    let s = control(
        "/_test/checkout_sessions",
        json!({"payment_status": "paid", "currency": "usd",
               "line_items": [{"product": "prod_after_sale", "unit_amount": 700}]}),
    );
    let pi = s["payment_intent"].as_str().unwrap().to_owned();
    let read = std::process::Command::new("curl")
        .args(["-sf", "-H", "Authorization: Bearer sk_test_adapter"])
        .arg(format!("{}/v1/payment_intents/{pi}", base()))
        .output()
        .unwrap();
    let intent: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
    let charge = intent["latest_charge"].as_str().unwrap().to_owned();
    (s["id"].as_str().unwrap().to_owned(), pi, charge)
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_sessions_payment_is_found_by_its_payment_intent_or_its_charge() {
    let p = client();
    let (session, pi, charge) = paid_session();
    let (pi, charge) = (
        PaymentIntentId::parse(pi).unwrap(),
        ChargeId::parse(charge).unwrap(),
    );
    let found = p.order_of_payment(Some(&pi), &charge).await.unwrap();
    assert_eq!(found.as_ref().map(OrderId::as_str), Some(session.as_str()));
    // A dispute that does not name its PaymentIntent: the charge is read for it.
    let before = requests("/v1/charges/").len();
    let found = p.order_of_payment(None, &charge).await.unwrap();
    assert_eq!(found.as_ref().map(OrderId::as_str), Some(session.as_str()));
    assert_eq!(requests("/v1/charges/").len(), before + 1);
    // An unknown charge is Stripe's 404, not "no order".
    let missing = ChargeId::parse("ch_missing_after_sale").unwrap();
    assert!(p.order_of_payment(None, &missing).await.is_err());
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_holds_payment_intent_names_its_hold_and_a_payment_made_elsewhere_is_no_order() {
    let p = client();
    let hold = OrderId::parse(unique("hold_as")).unwrap();
    let created = p
        .create_payment_intent(&NewPaymentIntent {
            amount: 900,
            currency: "usd".into(),
            hold_id: hold.clone(),
            store_id: StoreId::parse("s1").unwrap(),
            receipt_email: None,
            idempotency_key: format!("stockbridge-checkout-{hold}"),
        })
        .await
        .unwrap();
    let any = ChargeId::parse("ch_unused").unwrap();
    let found = p.order_of_payment(Some(&created.id), &any).await.unwrap();
    assert_eq!(found, Some(hold));
    // A PaymentIntent with neither a hold nor a session.
    let made = std::process::Command::new("curl")
        .args(["-sf", "-H", "Authorization: Bearer sk_test_adapter"])
        .args(["-d", "amount=500", "-d", "currency=usd"])
        .arg(format!("{}/v1/payment_intents", base()))
        .output()
        .unwrap();
    let other: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    let id = PaymentIntentId::parse(other["id"].as_str().unwrap()).unwrap();
    assert_eq!(p.order_of_payment(Some(&id), &any).await.unwrap(), None);
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_charge_and_a_dispute_read_back_as_the_decoder_reads_them() {
    let p = client();
    let (_, pi, charge) = paid_session();
    let before = p.object(ObjectKind::Charge, &charge).await.unwrap();
    assert_eq!(
        (
            before["amount_refunded"].as_u64(),
            before["refunded"].as_bool()
        ),
        (Some(0), Some(false))
    );
    assert_eq!(before["payment_intent"], json!(pi));
    let d = control(
        "/_test/disputes",
        json!({"payment_intent": pi, "status": "lost"}),
    );
    let read = p
        .object(ObjectKind::Dispute, d["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(read["status"], "lost");
    assert_eq!(read["charge"], json!(charge));
    assert_eq!(read["payment_intent"], json!(pi));
}

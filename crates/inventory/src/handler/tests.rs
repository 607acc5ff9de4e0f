//! The edge with in-memory ports and a default `Context`: what Lambda gets back.

use std::sync::atomic::Ordering;

use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use stockbridge_app::memory::{MemoryPayments, MemoryPublisher, MemoryStore, TickingClock};
use stockbridge_app::orders::Services;
use stockbridge_app::ports::SessionLine;
use stockbridge_domain::{OrderId, ProductId, StoreId};

use super::handle;

type App = Services<MemoryStore, MemoryPublisher, MemoryPayments, TickingClock>;

fn app() -> App {
    let store = MemoryStore::default();
    store.put_item(stockbridge_app::memory::test_item(
        &StoreId::parse("store_chicago").unwrap(),
        &ProductId::parse("prod_tee").unwrap(),
        "Tee",
        5,
    ));
    let payments = MemoryPayments::default();
    payments.add_session(
        &OrderId::parse("cs_test_edge").unwrap(),
        vec![SessionLine {
            product_id: ProductId::parse("prod_tee").unwrap(),
            quantity: 2,
            amount_total: None,
        }],
    );
    let config = stockbridge_app::memory::inventory_config();
    Services::new(
        store,
        MemoryPublisher::default(),
        payments,
        TickingClock::default(),
        config,
    )
}

/// The sample envelope, paid, for `cs_test_edge` in `store_chicago`.
fn paid() -> Value {
    let mut v: Value = serde_json::from_str(include_str!(
        "../../../../testdata/stripe/eventbridge-envelope.json"
    ))
    .unwrap();
    let object = &mut v["detail"]["data"]["object"];
    object["id"] = json!("cs_test_edge");
    object["payment_status"] = json!("paid");
    object["payment_intent"] = json!("pi_edge");
    object["metadata"] = json!({"store_id": "store_chicago"});
    v
}

fn event(payload: Value) -> LambdaEvent<Value> {
    LambdaEvent::new(payload, Context::default())
}

#[tokio::test]
async fn an_applied_order_answers_with_its_outcome() {
    let app = app();
    let out = handle(&app, event(paid())).await.unwrap();
    assert_eq!(
        out,
        json!({"status": "applied", "order_id": "cs_test_edge", "outcome": "Fulfilled"})
    );
}

#[tokio::test]
async fn an_event_type_it_does_not_handle_is_ignored() {
    let mut ev = paid();
    ev["detail-type"] = json!("customer.created");
    ev["detail"]["type"] = json!("customer.created");
    let out = handle(&app(), event(ev)).await.unwrap();
    assert_eq!(out, json!({"status": "ignored"}));
}

#[tokio::test]
async fn a_malformed_event_is_an_invalid_input_error_naming_the_field() {
    let mut ev = paid();
    ev["detail"]["data"]["object"]["payment_status"] = json!(7);
    let err = handle(&app(), event(ev)).await.unwrap_err();
    assert_eq!(err.error_type, "stockbridge.Invalid");
    assert!(
        err.error_message.contains("payment_status"),
        "{}",
        err.error_message
    );
}

#[tokio::test]
async fn a_store_that_fails_is_a_retryable_error() {
    let app = app();
    app.store().fail_records.store(5, Ordering::SeqCst);
    let err = handle(&app, event(paid())).await.unwrap_err();
    assert_eq!(
        err.error_type, "stockbridge.Retryable",
        "{}",
        err.error_message
    );
}

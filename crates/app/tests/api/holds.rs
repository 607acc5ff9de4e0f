//! The checkout API with reservations against the in-memory ports.

use std::sync::atomic::Ordering;

use stockbridge_app::ports::{CatalogReader, InventoryStore};
use stockbridge_app::reservations::{HoldLimits, ReservationReply, parse_request};
use stockbridge_domain::{OrderStatus, PaymentIntentId};

use crate::holds_support::*;

#[tokio::test]
async fn a_race_of_30_checkouts_for_10_units_holds_exactly_10() {
    let (inv, store, _, _) = setup(10).await;
    let limits = HoldLimits::default();
    let keys: Vec<String> = (0..30).map(|i| format!("key-{i}")).collect();
    let req = request(1);
    let replies =
        futures_util::future::join_all(keys.iter().map(|k| inv.reserve(&req, k, &limits, TIME)))
            .await;
    let held = replies
        .iter()
        .filter(|r| matches!(r, Ok(ReservationReply::Held { .. })))
        .count();
    let short = replies
        .iter()
        .filter(|r| matches!(r, Ok(ReservationReply::Short(_))))
        .count();
    assert_eq!((held, short), (10, 20));
    let item = store.item(&s1(), &pid("tee")).await.unwrap().unwrap();
    assert_eq!(item.available, 0);
}

#[tokio::test]
async fn a_retry_with_the_same_key_gets_the_same_hold_and_payment_intent() {
    let (inv, store, payments, _) = setup(5).await;
    let limits = HoldLimits::default();
    let a = held(&inv.reserve(&request(2), "k1", &limits, TIME).await.unwrap());
    let b = held(&inv.reserve(&request(2), "k1", &limits, TIME).await.unwrap());
    assert_eq!(a, b);
    assert_eq!(a.2, 3000, "the amount comes from the catalog");
    assert_eq!(
        store
            .item(&s1(), &pid("tee"))
            .await
            .unwrap()
            .unwrap()
            .available,
        3,
        "held once"
    );
    assert_eq!(payments.intents.lock().unwrap().len(), 1);
    // The same key with another request is refused.
    assert!(matches!(
        inv.reserve(&request(1), "k1", &limits, TIME).await.unwrap(),
        ReservationReply::Invalid(e) if e.field == "Idempotency-Key"
    ));
}

#[tokio::test]
async fn an_authorised_hold_is_captured_once_and_a_duplicate_event_changes_nothing() {
    let (inv, store, payments, _) = setup(5).await;
    let (hold, _, _) = held(
        &inv.reserve(&request(2), "k", &HoldLimits::default(), TIME)
            .await
            .unwrap(),
    );
    let pi = PaymentIntentId::parse("pi_1").unwrap();
    payments.authorize(&pi);
    let e = intent_event(
        "payment_intent.amount_capturable_updated",
        "pi_1",
        &hold,
        "evt_a",
    );
    inv.handle(&e).await.unwrap();
    inv.handle(&e).await.unwrap();
    assert_eq!(payments.intent_status(&pi), Some("succeeded"));
    let order = store
        .load_order(&stockbridge_domain::OrderId::parse(hold).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(order.status, OrderStatus::Fulfilled);
    assert_eq!(
        store
            .item(&s1(), &pid("tee"))
            .await
            .unwrap()
            .unwrap()
            .available,
        3
    );
    let calls = payments.calls.lock().unwrap().clone();
    assert!(
        !calls.contains(&"cancel") && !calls.contains(&"refund"),
        "{calls:?}"
    );
}

#[tokio::test]
async fn an_expired_hold_returns_its_stock_and_a_late_authorisation_is_cancelled() {
    let (inv, store, payments, clock) = setup(2).await;
    let limits = HoldLimits {
        hold_seconds: 60,
        ..HoldLimits::default()
    };
    let (hold, _, _) = held(&inv.reserve(&request(2), "k", &limits, TIME).await.unwrap());
    assert_eq!(
        store
            .item(&s1(), &pid("tee"))
            .await
            .unwrap()
            .unwrap()
            .available,
        0
    );
    assert_eq!(
        inv.sweep_expired_holds().await.unwrap().released,
        0,
        "not expired yet"
    );
    clock.0.fetch_add(61_000, Ordering::SeqCst);
    let r = inv.sweep_expired_holds().await.unwrap();
    assert_eq!((r.expired, r.released), (1, 1));
    assert_eq!(
        store
            .item(&s1(), &pid("tee"))
            .await
            .unwrap()
            .unwrap()
            .available,
        2
    );
    // Sold elsewhere meanwhile.
    let (_, _, _) = held(
        &inv.reserve(&request(2), "other", &limits, TIME)
            .await
            .unwrap(),
    );
    let pi = PaymentIntentId::parse("pi_1").unwrap();
    payments.authorize(&pi);
    inv.handle(&intent_event(
        "payment_intent.amount_capturable_updated",
        "pi_1",
        &hold,
        "evt_late",
    ))
    .await
    .unwrap();
    assert_eq!(
        payments.intent_status(&pi),
        Some("canceled"),
        "cancelled, never captured"
    );
    let order = store
        .load_order(&stockbridge_domain::OrderId::parse(hold).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(order.status, OrderStatus::Oversold);
    assert_eq!(
        store
            .item(&s1(), &pid("tee"))
            .await
            .unwrap()
            .unwrap()
            .available,
        0
    );
}

#[tokio::test]
async fn a_failed_payment_releases_the_hold() {
    let (inv, store, _, _) = setup(3).await;
    let (hold, _, _) = held(
        &inv.reserve(&request(3), "k", &HoldLimits::default(), TIME)
            .await
            .unwrap(),
    );
    inv.handle(&intent_event(
        "payment_intent.payment_failed",
        "pi_1",
        &hold,
        "evt_f",
    ))
    .await
    .unwrap();
    assert_eq!(
        store
            .item(&s1(), &pid("tee"))
            .await
            .unwrap()
            .unwrap()
            .available,
        3
    );
}

#[test]
fn bad_requests_name_their_field() {
    let limits = HoldLimits::default();
    let field = |body: &str| parse_request(body.as_bytes(), &limits).unwrap_err().field;
    assert_eq!(field("nope"), "body");
    assert_eq!(field(r#"{"items": []}"#), "store_id");
    assert_eq!(field(r#"{"store_id": "s1"}"#), "items");
    assert_eq!(
        field(r#"{"store_id": "s1", "items": [{"product_id": "tee"}]}"#),
        "items[0].quantity"
    );
    assert_eq!(field("[]"), "body");
    assert_eq!(field(r#"{"store_id": "s1", "items": []}"#), "items");
    assert_eq!(
        field(r#"{"store_id": "s1", "items": [{"product_id": "tee", "quantity": 0}]}"#),
        "items[0].quantity"
    );
    assert_eq!(
        field(r#"{"store_id": "s1", "items": [{"product_id": "tee", "quantity": 11}]}"#),
        "items[0].quantity"
    );
    assert_eq!(
        field(r#"{"store_id": "s1", "items": [{"product_id": "tee", "quantity": "2"}]}"#),
        "items[0].quantity"
    );
    assert_eq!(
        field(r#"{"store_id": "s1", "items": [{"product_id": "a/b", "quantity": 1}]}"#),
        "items[0].product_id"
    );
    assert_eq!(
        field(
            r#"{"store_id": "s1", "items": [{"product_id": "tee", "quantity": 1}], "customer_email": "x"}"#
        ),
        "customer_email"
    );
    assert_eq!(
        field(
            r#"{"store_id": "s1", "items": [{"product_id": "tee", "quantity": 1}], "amount": 1}"#
        ),
        "amount",
        "a price from the client is refused"
    );
    let ok = parse_request(br#"{"store_id": "s1", "items": [{"product_id": "tee", "quantity": 6}, {"product_id": "tee", "quantity": 5}]}"#, &limits);
    assert_eq!(
        ok.unwrap_err().field,
        "items",
        "merged lines over the maximum"
    );
}

#[tokio::test]
async fn a_retry_after_the_hold_was_released_is_told_to_start_again() {
    let (inv, _, _, clock) = setup(2).await;
    let limits = HoldLimits {
        hold_seconds: 60,
        ..HoldLimits::default()
    };
    held(&inv.reserve(&request(1), "k", &limits, TIME).await.unwrap());
    clock.0.fetch_add(61_000, Ordering::SeqCst);
    inv.sweep_expired_holds().await.unwrap();
    assert!(matches!(
        inv.reserve(&request(1), "k", &limits, TIME).await.unwrap(),
        ReservationReply::Released(_)
    ));
}

#[tokio::test]
async fn the_sweeper_releases_page_by_page_and_stops_at_its_deadline_before_a_hold() {
    use stockbridge_domain::{HoldTerms, OrderId, OrderRecord, OrderWrite, PaymentState, WriteSet};
    let (inv, store, _, clock) = setup(1).await;
    let due = clock.0.load(Ordering::SeqCst);
    for i in 0..250 {
        let event = stockbridge_domain::StripeEventId::parse("evt_1").unwrap();
        let order = OrderRecord {
            order_id: OrderId::parse(format!("hold_{i:03}")).unwrap(),
            store_id: s1(),
            status: OrderStatus::Pending,
            payment: PaymentState::Awaiting,
            lines: vec![],
            unmatched: vec![],
            shortfalls: vec![],
            payment_intent: None,
            payment_link: None,
            refund_id: None,
            created_by: event.clone(),
            last_event: event,
            created_at: stockbridge_domain::Timestamp(due),
            updated_at: stockbridge_domain::Timestamp(due),
            hold: Some(HoldTerms {
                expires_at: stockbridge_domain::Timestamp(due),
                ..HoldTerms::default()
            }),
            predating: vec![],
            refund_amount: None,
            after_sale: None,
        };
        let w = WriteSet {
            order: Some(OrderWrite::Create(order)),
            ..WriteSet::default()
        };
        store.commit(&w).await.unwrap();
    }
    // Out of time before the first hold: nothing is started, the next run goes on.
    let r = inv
        .sweep_expired_holds_until(Some(std::time::Instant::now()))
        .await
        .unwrap();
    assert_eq!((r.expired, r.released, r.more), (0, 0, true));
    // With time, every page to the end (the store answers 100 at a time).
    let r = inv.sweep_expired_holds().await.unwrap();
    assert_eq!((r.expired, r.released, r.more), (250, 250, false));
    assert!(store.pending_orders(None).await.unwrap().is_empty());
}

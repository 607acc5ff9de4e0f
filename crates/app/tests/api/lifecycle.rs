//! A hold against Stripe's real PaymentIntent life cycle (in-memory ports): a cancel is terminal,
//! a late authorisation takes stock only while Stripe still holds it, a capture refused for good
//! gives the stock back, and a PaymentIntent Stripe refuses to create releases the hold at once.

use std::sync::atomic::Ordering;

use stockbridge_app::parking::ParkingLot;
use stockbridge_app::ports::InventoryStore;
use stockbridge_app::reservations::{HoldLimits, ReservationError, ReservationReply};
use stockbridge_domain::{OrderId, OrderStatus, PaymentIntentId};

use crate::holds_support::*;

async fn available(store: &stockbridge_app::memory::MemoryStore) -> u64 {
    store
        .item(&s1(), &pid("tee"))
        .await
        .unwrap()
        .unwrap()
        .available
}

async fn status(store: &stockbridge_app::memory::MemoryStore, hold: &str) -> OrderStatus {
    let id = OrderId::parse(hold).unwrap();
    store.load_order(&id).await.unwrap().unwrap().status
}

fn pi1() -> PaymentIntentId {
    PaymentIntentId::parse("pi_1").unwrap()
}

fn authorised(hold: &str, evt: &str) -> serde_json::Value {
    intent_event(
        "payment_intent.amount_capturable_updated",
        "pi_1",
        hold,
        evt,
    )
}

#[tokio::test]
async fn a_cancel_is_terminal_and_a_late_authorisation_takes_nothing() {
    let (inv, store, payments, _) = setup(2).await;
    let (hold, _, _) = held(
        &inv.reserve(&request(2), "k", &HoldLimits::default(), TIME)
            .await
            .unwrap(),
    );
    payments.authorize(&pi1());
    payments.set_intent_status(&pi1(), "canceled"); // cancelled in the Dashboard
    inv.handle(&intent_event(
        "payment_intent.canceled",
        "pi_1",
        &hold,
        "evt_c",
    ))
    .await
    .unwrap();
    assert_eq!(status(&store, &hold).await, OrderStatus::Canceled);
    assert_eq!(available(&store).await, 2);

    // The authorisation event, older than the cancel, arrives late (or is replayed).
    inv.handle(&authorised(&hold, "evt_a")).await.unwrap();
    assert_eq!(status(&store, &hold).await, OrderStatus::Canceled);
    assert_eq!(available(&store).await, 2, "never taken again");
    let calls = payments.calls.lock().unwrap().clone();
    assert!(!calls.contains(&"capture"), "{calls:?}");
}

#[tokio::test]
async fn a_released_hold_is_taken_again_only_while_stripe_still_holds_the_authorisation() {
    let (inv, store, payments, clock) = setup(2).await;
    let limits = HoldLimits {
        hold_seconds: 60,
        ..HoldLimits::default()
    };
    let (hold, _, _) = held(&inv.reserve(&request(2), "k", &limits, TIME).await.unwrap());
    clock.0.fetch_add(61_000, Ordering::SeqCst);
    assert_eq!(inv.sweep_expired_holds().await.unwrap().released, 1);
    // Its authorisation was cancelled at Stripe; the cancel event has not arrived yet.
    payments.authorize(&pi1());
    payments.set_intent_status(&pi1(), "canceled");
    inv.handle(&authorised(&hold, "evt_a")).await.unwrap();
    assert_eq!(available(&store).await, 2, "not taken again");
    assert_eq!(status(&store, &hold).await, OrderStatus::Canceled);
    let calls = payments.calls.lock().unwrap().clone();
    assert!(
        calls.contains(&"read_intent") && !calls.contains(&"capture"),
        "{calls:?}"
    );

    // Still authorised at Stripe: the stock is taken again and captured.
    let (hold2, _, _) = held(&inv.reserve(&request(1), "k2", &limits, TIME).await.unwrap());
    clock.0.fetch_add(61_000, Ordering::SeqCst);
    assert_eq!(inv.sweep_expired_holds().await.unwrap().released, 1);
    let pi2 = PaymentIntentId::parse("pi_2").unwrap();
    payments.authorize(&pi2);
    inv.handle(&intent_event(
        "payment_intent.amount_capturable_updated",
        "pi_2",
        &hold2,
        "evt_b",
    ))
    .await
    .unwrap();
    assert_eq!(status(&store, &hold2).await, OrderStatus::Fulfilled);
    assert_eq!(payments.intent_status(&pi2), Some("succeeded"));
    assert_eq!(available(&store).await, 1);
}

#[tokio::test]
async fn a_capture_refused_for_good_returns_the_stock_and_parks_the_order() {
    let (inv, store, payments, _) = setup(5).await;
    let (hold, _, _) = held(
        &inv.reserve(&request(2), "k", &HoldLimits::default(), TIME)
            .await
            .unwrap(),
    );
    payments.authorize(&pi1());
    // The authorisation lapses before the capture (Stripe cancels it on its own).
    payments.set_intent_status(&pi1(), "canceled");
    let out = inv.handle(&authorised(&hold, "evt_a")).await;
    assert!(out.is_ok(), "not failed for ever: {out:?}");
    assert_eq!(status(&store, &hold).await, OrderStatus::CaptureFailed);
    assert_eq!(available(&store).await, 5, "the sale's stock came back");
    let parked = store.parked().await.unwrap();
    assert_eq!(
        parked.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        vec![format!("capture:{hold}")]
    );
    assert!(parked[0].reason.contains("pi_1"), "{}", parked[0].reason);
    // Its duplicate changes nothing.
    inv.handle(&authorised(&hold, "evt_a")).await.unwrap();
    assert_eq!(available(&store).await, 5);

    // Already captured (by hand, or outside the key's 24 hours): not a refusal.
    let (hold2, _, _) = held(
        &inv.reserve(&request(1), "k2", &HoldLimits::default(), TIME)
            .await
            .unwrap(),
    );
    let pi2 = PaymentIntentId::parse("pi_2").unwrap();
    payments.set_intent_status(&pi2, "succeeded");
    inv.handle(&intent_event(
        "payment_intent.amount_capturable_updated",
        "pi_2",
        &hold2,
        "evt_b",
    ))
    .await
    .unwrap();
    assert_eq!(status(&store, &hold2).await, OrderStatus::Fulfilled);
    assert_eq!(available(&store).await, 4);
}

#[tokio::test]
async fn a_payment_intent_stripe_refuses_releases_the_hold_at_once() {
    let (inv, store, payments, _) = setup(3).await;
    *payments.refuse_intents.lock().unwrap() = Some("Invalid email address: x@y.z".into());
    let reply = inv
        .reserve(&request(3), "k", &HoldLimits::default(), TIME)
        .await
        .unwrap();
    let ReservationReply::Refused(hold) = reply else {
        panic!("refused: {reply:?}")
    };
    assert_eq!(available(&store).await, 3, "nothing stays held");
    assert_eq!(status(&store, hold.as_str()).await, OrderStatus::Released);
    // The same key again: told to start over, never a second hold.
    *payments.refuse_intents.lock().unwrap() = None;
    let again = inv
        .reserve(&request(3), "k", &HoldLimits::default(), TIME)
        .await
        .unwrap();
    assert_eq!(again, ReservationReply::Released(hold));
    assert_eq!(available(&store).await, 3);
}

#[tokio::test]
async fn a_retry_sends_stripe_what_the_hold_recorded_even_after_a_price_change() {
    let (inv, store, payments, _) = setup(3).await;
    payments.fail_intents.store(1, Ordering::SeqCst);
    let first = inv
        .reserve(&request(2), "k", &HoldLimits::default(), TIME)
        .await;
    assert!(
        matches!(first, Err(ReservationError::Stripe(_))),
        "{first:?}"
    );
    assert_eq!(available(&store).await, 1, "held for the retry");
    set_price(&store, 2500).await;
    let (_, _, amount) = held(
        &inv.reserve(&request(2), "k", &HoldLimits::default(), TIME)
            .await
            .unwrap(),
    );
    assert_eq!(amount, 3000, "the price when the stock was held");
    let intents = payments.intents.lock().unwrap().clone();
    assert_eq!(
        intents.values().map(|i| i.amount).collect::<Vec<_>>(),
        vec![3000]
    );
}

#[tokio::test]
async fn conflicts_are_retried_only_while_the_request_has_time() {
    let (inv, store, _, _) = setup(3).await;
    store.inject_conflicts.store(1_000, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let out = inv
        .reserve(
            &request(1),
            "k",
            &HoldLimits::default(),
            std::time::Duration::from_millis(500),
        )
        .await;
    assert!(matches!(out, Err(ReservationError::Contention)), "{out:?}");
    let tried = 1_000 - store.inject_conflicts.load(Ordering::SeqCst);
    assert!(tried >= 1, "tried {tried} times");
    // Not a timing assertion on speed: the bound is what the request was given.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(available(&store).await, 3);
}

#[tokio::test]
async fn an_amount_stripe_would_refuse_is_a_400_before_anything_is_held() {
    let (inv, store, payments, _) = setup(3).await;
    set_price(&store, 10).await; // below Stripe's 50-cent minimum
    let reply = inv
        .reserve(&request(1), "k", &HoldLimits::default(), TIME)
        .await
        .unwrap();
    let ReservationReply::Invalid(e) = reply else {
        panic!("invalid: {reply:?}")
    };
    assert_eq!(e.field, "items");
    assert_eq!(available(&store).await, 3);
    assert!(payments.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_retry_of_a_hold_is_never_priced_again() {
    let (inv, store, payments, _) = setup(3).await;
    payments.fail_intents.store(1, Ordering::SeqCst);
    assert!(
        inv.reserve(&request(2), "k", &HoldLimits::default(), TIME)
            .await
            .is_err()
    );
    // Repriced meanwhile to an amount the checkout would refuse for a new cart.
    set_price(&store, 10).await;
    let (_, _, amount) = held(
        &inv.reserve(&request(2), "k", &HoldLimits::default(), TIME)
            .await
            .unwrap(),
    );
    assert_eq!(
        amount, 3000,
        "the hold's own price: the buyer gets its client_secret"
    );
}

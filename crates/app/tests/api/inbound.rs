//! Every way Stripe delivers (`stockbridge_app::inbound`): a webhook's snapshot and thin events,
//! thin events on EventBridge, pings, catalog events for the sync's queue, events that can never
//! be handled, and Stripe's `event_generation_failure.resolved`.

use serde_json::{Value, json};
use stockbridge_app::inbound::Delivered;
use stockbridge_app::memory::MemoryCatalogQueue;
use stockbridge_app::orders::Handled;
use stockbridge_app::parking::ParkingLot;
use stockbridge_domain::Outcome;

use crate::support::*;

/// A thin event about a v1 object, as Stripe's notification carries it.
fn thin(id: &str, kind: &str, object: (&str, &str)) -> Value {
    json!({
        "id": id, "object": "v2.core.event", "type": kind, "livemode": false,
        "created": "2025-11-01T18:27:56.000Z", "context": null,
        "related_object": {"id": object.0, "type": object.1, "url": format!("/v1/x/{}", object.0)},
    })
}

/// The sample session, paid, as Stripe would answer `GET /v1/checkout/sessions/{id}`.
fn session_object(id: &str) -> Value {
    completed("evt_unused", id)["detail"]["data"]["object"].clone()
}

fn applied(d: &Delivered) -> Option<&Outcome> {
    match d {
        Delivered::Handled(Handled::Applied { outcome, .. }) => Some(outcome),
        _ => None,
    }
}

#[tokio::test]
async fn a_webhooks_snapshot_event_is_applied_once_like_an_eventbridge_one() {
    let w = world(&[("tee", 5, PAID - 3600)]);
    session(&w, "cs_1", &[("tee", 2)]);
    let queue = MemoryCatalogQueue::default();
    let event = completed("evt_1", "cs_1")["detail"].clone();
    let first = w.app.deliver(&event, &queue).await.unwrap();
    assert_eq!(applied(&first), Some(&Outcome::Fulfilled));
    let again = w.app.deliver(&event, &queue).await.unwrap();
    assert!(matches!(applied(&again), Some(Outcome::AlreadyApplied(_))));
    assert_eq!(available(&w, "tee"), 3);
    assert!(queue.sent().is_empty());
}

#[tokio::test]
async fn a_thin_event_reads_its_object_back_and_applies_it_exactly_once() {
    let w = world(&[("tee", 5, PAID - 3600)]);
    session(&w, "cs_1", &[("tee", 2)]);
    w.payments.add_object("cs_1", session_object("cs_1"));
    let queue = MemoryCatalogQueue::default();
    let event = thin(
        "evt_thin1",
        "v1.checkout.session.completed",
        ("cs_1", "checkout.session"),
    );
    let first = w.app.deliver(&event, &queue).await.unwrap();
    assert_eq!(applied(&first), Some(&Outcome::Fulfilled));
    assert!(order(&w, "cs_1").is_some());
    // The same thin event through EventBridge (redelivered): nothing more.
    let envelope = json!({"source": "aws.partner/stripe.com/ed_1", "detail": event});
    let again = w.app.handle_envelope(&envelope).await.unwrap();
    assert!(matches!(
        again,
        Handled::Applied {
            outcome: Outcome::AlreadyApplied(_),
            ..
        }
    ));
    assert_eq!(available(&w, "tee"), 3);
    let calls = w.payments.calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().filter(|c| **c == "retrieve_session").count(),
        2
    );
}

#[tokio::test]
async fn a_thin_event_whose_object_cannot_be_read_now_fails_to_be_delivered_again() {
    let w = world(&[("tee", 5, PAID - 3600)]);
    session(&w, "cs_1", &[("tee", 1)]);
    w.payments.add_object("cs_1", session_object("cs_1"));
    w.payments
        .fail_objects
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let queue = MemoryCatalogQueue::default();
    let event = thin(
        "evt_thin1",
        "v1.checkout.session.completed",
        ("cs_1", "checkout.session"),
    );
    let err = w.app.deliver(&event, &queue).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(w.store.parked().await.unwrap().is_empty());
    assert_eq!(available(&w, "tee"), 5);
    let retried = w.app.deliver(&event, &queue).await.unwrap();
    assert_eq!(applied(&retried), Some(&Outcome::Fulfilled));
}

#[tokio::test]
async fn thin_events_of_the_other_mode_or_a_foreign_source_are_refused_untouched() {
    let w = world(&[("tee", 5, PAID - 3600)]);
    let queue = MemoryCatalogQueue::default();
    let mut live = thin(
        "evt_l",
        "v1.checkout.session.completed",
        ("cs_1", "checkout.session"),
    );
    live["livemode"] = json!(true);
    assert_eq!(
        w.app.deliver(&live, &queue).await.unwrap(),
        Delivered::Handled(Handled::Refused)
    );
    let foreign = json!({"source": "aws.partner/other.com/x", "detail":
        thin("evt_f", "v1.checkout.session.completed", ("cs_1", "checkout.session"))});
    assert_eq!(
        w.app.handle_envelope(&foreign).await.unwrap(),
        Handled::Refused
    );
    assert!(w.payments.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_ping_is_healthy_and_catalog_events_go_to_the_sync_queue_as_they_came() {
    let w = world(&[("tee", 5, PAID - 3600)]);
    let queue = MemoryCatalogQueue::default();
    let ping = json!({"id": "evt_p", "object": "v2.core.event", "type":
        "v2.core.event_destination.ping", "created": "2026-12-07T10:00:00Z",
        "related_object": {"id": "ed_1", "type": "v2.core.event_destination", "url": "/v2/x"}});
    assert_eq!(w.app.deliver(&ping, &queue).await.unwrap(), Delivered::Ping);
    let snapshot = json!({"id": "evt_c", "object": "event", "type": "product.updated",
        "livemode": false, "data": {"object": {"id": "tee"}}});
    let thin_price = thin("evt_t", "v1.price.updated", ("price_1", "price"));
    for event in [&snapshot, &thin_price] {
        assert_eq!(
            w.app.deliver(event, &queue).await.unwrap(),
            Delivered::ForCatalog
        );
    }
    assert_eq!(
        queue.sent(),
        vec![snapshot.to_string(), thin_price.to_string()]
    );
    assert!(w.payments.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_event_that_can_never_be_handled_is_parked_with_its_reason() {
    let w = world(&[("tee", 5, PAID - 3600)]);
    let queue = MemoryCatalogQueue::default();
    let mut bad = completed("evt_bad", "cs_1")["detail"].clone();
    bad["data"]["object"].as_object_mut().unwrap().remove("id");
    let d = w.app.deliver(&bad, &queue).await.unwrap();
    assert!(
        matches!(d, Delivered::Parked(ref why) if why.contains("data.object")),
        "{d:?}"
    );
    let parked = w.store.parked().await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].id, "event:evt_bad");
    assert_eq!(parked[0].event.as_ref(), Some(&bad));
    let no_object = thin(
        "evt_t",
        "v1.checkout.session.completed",
        ("cs_1", "customer"),
    );
    assert!(matches!(
        w.app.deliver(&no_object, &queue).await.unwrap(),
        Delivered::Parked(_)
    ));
    assert_eq!(available(&w, "tee"), 5);
}

/// A sample in `events/`.
fn sample(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The `v2.core.health.event_generation_failure.resolved` samples (as delivered, as fetched),
/// about another object.
fn failure(id: &str, event_type: &str, object: (&str, &str)) -> (Value, Value) {
    let mut note = sample("webhook.event_generation_failure.resolved.json");
    note["id"] = json!(id);
    let mut fetched = sample("webhook.event_generation_failure.resolved.fetched.json");
    fetched["id"] = json!(id);
    fetched["data"]["impact"]["event_type"] = json!(event_type);
    fetched["data"]["impact"]["related_object"] =
        json!({"id": object.0, "type": object.1, "url": "/v1/x"});
    (note, fetched)
}

#[tokio::test]
async fn a_session_stripe_never_evented_is_applied_once_and_recorded() {
    let w = world(&[("tee", 5, PAID - 3600)]);
    session(&w, "cs_1", &[("tee", 2)]);
    let mut object = session_object("cs_1");
    object["created"] = json!(PAID);
    w.payments.add_object("cs_1", object);
    let (note, fetched) = failure(
        "evt_h1",
        "checkout.session.completed",
        ("cs_1", "checkout.session"),
    );
    w.payments.add_v2_event("evt_h1", fetched);
    let queue = MemoryCatalogQueue::default();
    let Delivered::Recovered(r) = w.app.deliver(&note, &queue).await.unwrap() else {
        panic!("not a recovery")
    };
    assert!(r.repaired, "{r:?}");
    assert_eq!(available(&w, "tee"), 3);
    // Delivered again (Stripe retries webhooks): nothing more is taken.
    let Delivered::Recovered(again) = w.app.deliver(&note, &queue).await.unwrap() else {
        panic!("not a recovery")
    };
    assert!(!again.repaired, "{again:?}");
    assert_eq!(available(&w, "tee"), 3);
    let recorded = w.store.recorded();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].1.what, "stripe_generated_every_event");
    assert_eq!(recorded[0].1.subject, "checkout.session cs_1");
    assert!(recorded[0].2);
}

#[tokio::test]
async fn a_session_opened_before_stockbridge_managed_its_product_is_left_alone() {
    let w = world(&[("tee", 5, PAID + 3600)]);
    session(&w, "cs_old", &[("tee", 2)]);
    let mut object = session_object("cs_old");
    object["created"] = json!(PAID);
    w.payments.add_object("cs_old", object);
    let (note, fetched) = failure(
        "evt_h2",
        "checkout.session.completed",
        ("cs_old", "checkout.session"),
    );
    w.payments.add_v2_event("evt_h2", fetched);
    let Delivered::Recovered(r) = w
        .app
        .deliver(&note, &MemoryCatalogQueue::default())
        .await
        .unwrap()
    else {
        panic!("not a recovery")
    };
    assert!(!r.repaired);
    assert!(r.done.contains("left alone"), "{r:?}");
    assert_eq!(available(&w, "tee"), 5);
    assert!(order(&w, "cs_old").is_none());
}

#[tokio::test]
async fn a_catalog_object_goes_to_the_sync_and_anything_else_is_only_recorded() {
    let w = world(&[("tee", 5, PAID - 3600)]);
    let queue = MemoryCatalogQueue::default();
    let (note, fetched) = failure("evt_h3", "product.updated", ("tee", "product"));
    w.payments.add_v2_event("evt_h3", fetched);
    let Delivered::Recovered(r) = w.app.deliver(&note, &queue).await.unwrap() else {
        panic!("not a recovery")
    };
    assert!(r.repaired);
    let sent: Value = serde_json::from_str(&queue.sent()[0]).unwrap();
    assert_eq!(sent["type"], "v1.product.updated");
    assert_eq!(sent["related_object"]["id"], "tee");
    let (note, fetched) = failure("evt_h4", "customer.updated", ("cus_1", "customer"));
    w.payments.add_v2_event("evt_h4", fetched);
    let Delivered::Recovered(r) = w.app.deliver(&note, &queue).await.unwrap() else {
        panic!("not a recovery")
    };
    assert!(!r.repaired);
    assert_eq!(queue.sent().len(), 1);
    assert_eq!(w.store.recorded().len(), 2);
}

#[tokio::test]
async fn a_thin_completed_event_takes_its_time_only_as_a_lower_bound_on_the_payment() {
    // Completed (unpaid, a delayed method) before the product was managed, paid since: read
    // now the session is paid, but that says nothing of when. Left to its other events.
    let w = world(&[("tee", 5, PAID + 2 * 86_400)]);
    session(&w, "cs_1", &[("tee", 2)]);
    w.payments.add_object("cs_1", session_object("cs_1"));
    let event = thin(
        "evt_thin1",
        "v1.checkout.session.completed",
        ("cs_1", "checkout.session"),
    );
    let d = w
        .app
        .deliver(&event, &MemoryCatalogQueue::default())
        .await
        .unwrap();
    assert_eq!(applied(&d), Some(&Outcome::PaidTimeUnknown));
    assert!(order(&w, "cs_1").is_none());
    assert_eq!(available(&w, "tee"), 5);
}

#[test]
fn a_read_refused_for_the_key_is_delivered_again_and_a_missing_object_is_not() {
    use stockbridge_app::inbound::DeliveryError;
    use stockbridge_app::ports::PaymentsError;
    let stripe = |source| DeliveryError::Stripe {
        what: "checkout.session cs_1".into(),
        source,
    };
    assert!(
        stripe(PaymentsError::Rejected {
            operation: "read",
            message: "HTTP 403: the key may not read sessions".into()
        })
        .is_retryable()
    );
    assert!(
        !stripe(PaymentsError::NotFound {
            operation: "read",
            message: "no such session".into()
        })
        .is_retryable()
    );
}

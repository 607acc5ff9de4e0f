//! The management boundary through the handler and the reconciler: an order paid before
//! stockbridge began managing an item's stock (its import, backfill or last `stock set`) is
//! history the merchant's count already includes — whether it arrives as a late event or is
//! found by a repair, it never moves stock and is never refunded.

use crate::support::{PAID, STORE, World, available, completed, order, session, world};
use serde_json::json;
use stockbridge_app::orders::Handled;
use stockbridge_app::ports::SessionSummary;
use stockbridge_app::reconcile::SessionWindow;
use stockbridge_domain::{OrderId, OrderStatus, Outcome, PaymentLinkId};

fn nothing_refunded_or_switched(w: &World) {
    assert!(w.payments.refunds.lock().unwrap().is_empty(), "refunds");
    assert!(w.payments.links.lock().unwrap().is_empty(), "link switches");
}

#[tokio::test]
async fn a_late_event_for_an_order_paid_before_the_import_moves_nothing_and_refunds_nothing() {
    // GIVEN a product imported at 0 an hour after the order was paid (its count includes it)
    let w = world(&[("prod_a", 0, PAID + 3600)]);
    session(&w, "cs_old", &[("prod_a", 1)]);
    // WHEN the order's event arrives late (EventBridge retries for 24 hours), twice
    for _ in 0..2 {
        w.app.handle(&completed("evt_old", "cs_old")).await.unwrap();
    }
    // THEN it is recorded as history and nothing else happens
    let record = order(&w, "cs_old").expect("recorded");
    assert_eq!(record.status, OrderStatus::Predates);
    assert_eq!(record.predating.len(), 1);
    assert_eq!(available(&w, "prod_a"), 0);
    assert!(w.store.snapshot().ledger.is_empty());
    assert!(w.publisher.published.lock().unwrap().is_empty());
    nothing_refunded_or_switched(&w);
}

#[tokio::test]
async fn an_order_paid_after_the_import_is_a_sale() {
    let w = world(&[("prod_a", 1, PAID - 3600)]);
    session(&w, "cs_new", &[("prod_a", 1)]);
    let h = w.app.handle(&completed("evt_new", "cs_new")).await.unwrap();
    assert!(matches!(
        h,
        Handled::Applied {
            outcome: Outcome::Fulfilled,
            ..
        }
    ));
    assert_eq!(available(&w, "prod_a"), 0);
    assert!(
        !w.payments
            .link_active(&PaymentLinkId::parse("plink_prod_a").unwrap())
    );
}

fn paid_session(id: &str, created: i64) -> SessionSummary {
    SessionSummary {
        id: OrderId::parse(id).unwrap(),
        created,
        object: json!({"id": id, "payment_status": "paid", "payment_intent": format!("pi_{id}"),
                       "metadata": {"store_id": STORE}, "livemode": false}),
    }
}

const ALL_DAY: Option<SessionWindow> = Some(SessionWindow {
    from: 0,
    to: i64::MAX,
});

#[tokio::test]
async fn the_reconciler_never_applies_or_refunds_sessions_paid_before_the_import() {
    // GIVEN two sessions paid two hours before the import (stock 2) and one after it
    let import = PAID;
    let w = world(&[("prod_a", 2, import)]);
    for id in ["cs_pre1", "cs_pre2", "cs_after"] {
        session(&w, id, &[("prod_a", 1)]);
    }
    w.payments.completed.lock().unwrap().extend([
        paid_session("cs_pre1", import - 7200),
        paid_session("cs_pre2", import - 7200),
        paid_session("cs_after", import + 60),
    ]);
    // WHEN the reconciler checks every session (no grace period), twice
    for _ in 0..2 {
        w.app.check_invariants(None, ALL_DAY, false).await.unwrap();
    }
    // THEN only the session opened after the import became an order
    assert_eq!(
        order(&w, "cs_after").unwrap().status,
        OrderStatus::Fulfilled
    );
    assert!(order(&w, "cs_pre1").is_none() && order(&w, "cs_pre2").is_none());
    assert_eq!(available(&w, "prod_a"), 1);
    assert!(w.payments.refunds.lock().unwrap().is_empty());
    let calls = w.payments.calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().filter(|c| **c == "line_items").count(),
        1,
        "history costs no Stripe call: {calls:?}"
    );
}

#[tokio::test]
async fn a_session_opened_before_a_later_import_is_reported_and_left_alone() {
    // prod_a was imported long ago, prod_b an hour ago; the session for prod_b opened before
    // prod_b's import. Stripe shows when it opened, not when it was paid: it may be history.
    let w = world(&[("prod_a", 5, PAID - 86_400), ("prod_b", 1, PAID)]);
    session(&w, "cs_between", &[("prod_b", 1)]);
    w.payments
        .completed
        .lock()
        .unwrap()
        .push(paid_session("cs_between", PAID - 600));
    let r = w.app.check_invariants(None, ALL_DAY, false).await.unwrap();
    let whats: Vec<&str> = r.discrepancies.iter().map(|d| d.what).collect();
    assert_eq!(whats, ["paid_session_before_boundary"], "{r:?}");
    assert_eq!(r.repaired, 0);
    assert!(
        order(&w, "cs_between").is_none(),
        "no record: its event decides"
    );
    assert_eq!(available(&w, "prod_b"), 1);
    nothing_refunded_or_switched(&w);
    // Its event, which carries the payment time, decides: here it was paid before prod_b's
    // import, so it is history.
    let mut event = completed("evt_between", "cs_between");
    event["detail"]["created"] = json!(PAID - 300);
    w.app.handle(&event).await.unwrap();
    assert_eq!(
        order(&w, "cs_between").unwrap().status,
        OrderStatus::Predates
    );
    assert_eq!(available(&w, "prod_b"), 1);
    nothing_refunded_or_switched(&w);
}

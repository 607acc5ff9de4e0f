//! Orders whose delayed payment settled at Stripe while its event was lost (even from
//! `/v1/events`): the reconciler settles them as the event would have.

use crate::support::{World, available, completed, order, session, world};
use stockbridge_app::ports::SessionPayment;
use stockbridge_app::reconcile::SessionWindow;
use stockbridge_domain::{OrderId, OrderStatus, PaymentState};

const EVERYTHING: Option<SessionWindow> = Some(SessionWindow {
    from: 0,
    to: i64::MAX / 1000,
});

async fn awaiting(w: &World, id: &str) {
    session(w, id, &[("prod_a", 1)]);
    let mut ev = completed(&format!("evt_{id}"), id);
    ev["detail"]["data"]["object"]["payment_status"] = "unpaid".into();
    w.app.handle(&ev).await.unwrap();
    assert_eq!(order(w, id).unwrap().payment, PaymentState::Awaiting);
}

fn stripe_says(w: &World, id: &str, payment: SessionPayment) {
    w.payments
        .session_payments
        .lock()
        .unwrap()
        .insert(OrderId::parse(id).unwrap(), payment);
}

#[tokio::test]
async fn a_held_order_whose_payment_cleared_without_its_event_is_confirmed() {
    let w = world(&[("prod_a", 2, 0)]);
    awaiting(&w, "cs_debit").await;
    assert_eq!(available(&w, "prod_a"), 1, "held");
    stripe_says(&w, "cs_debit", SessionPayment::Paid);
    let r = w
        .app
        .check_invariants(None, EVERYTHING, false)
        .await
        .unwrap();
    assert_eq!((r.awaiting_orders, r.repaired), (1, 1), "{r:?}");
    let o = order(&w, "cs_debit").unwrap();
    assert_eq!(
        (o.status, o.payment),
        (OrderStatus::Fulfilled, PaymentState::Paid)
    );
    assert_eq!(available(&w, "prod_a"), 1, "the held unit is the sale");
    let again = w
        .app
        .check_invariants(None, EVERYTHING, false)
        .await
        .unwrap();
    assert_eq!(again.awaiting_orders, 0, "settled: no longer awaiting");
}

#[tokio::test]
async fn a_held_order_whose_payment_failed_without_its_event_gives_its_stock_back() {
    let w = world(&[("prod_a", 2, 0)]);
    awaiting(&w, "cs_bounced").await;
    stripe_says(&w, "cs_bounced", SessionPayment::Failed);
    w.app
        .check_invariants(None, EVERYTHING, false)
        .await
        .unwrap();
    assert_eq!(
        order(&w, "cs_bounced").unwrap().status,
        OrderStatus::Released
    );
    assert_eq!(available(&w, "prod_a"), 2);
}

#[tokio::test]
async fn an_oversold_order_whose_payment_cleared_without_its_event_is_refunded() {
    let w = world(&[("prod_a", 0, 0)]);
    awaiting(&w, "cs_late").await;
    assert_eq!(order(&w, "cs_late").unwrap().status, OrderStatus::Oversold);
    assert!(
        w.payments.refunds.lock().unwrap().is_empty(),
        "not paid: nothing to refund yet"
    );
    stripe_says(&w, "cs_late", SessionPayment::Paid);
    w.app
        .check_invariants(None, EVERYTHING, false)
        .await
        .unwrap();
    assert_eq!(w.payments.refunds.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_payment_still_clearing_is_left_to_its_event() {
    let w = world(&[("prod_a", 2, 0)]);
    awaiting(&w, "cs_slow").await;
    let r = w
        .app
        .check_invariants(None, EVERYTHING, false)
        .await
        .unwrap();
    assert_eq!((r.awaiting_orders, r.discrepancies.len()), (1, 0), "{r:?}");
    assert_eq!(
        order(&w, "cs_slow").unwrap().payment,
        PaymentState::Awaiting
    );
}

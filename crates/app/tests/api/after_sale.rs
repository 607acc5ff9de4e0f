//! After the sale, through the inventory's entry with in-memory ports: the merchant's refunds
//! and lost disputes recorded on the order and (by the store's policy) returned to stock once;
//! stockbridge's own refunds announced with `stockbridge.order_refunded`.

use serde_json::{Value, json};
use stockbridge_app::memory::MemoryMerchantEvents;
use stockbridge_app::orders::{HandleError, Handled};
use stockbridge_app::ports::StoreSettings;
use stockbridge_domain::after_sale::{ReturnCause, ReturnsPolicy};
use stockbridge_domain::{CauseKind, OrderId, Outcome, StoreId};

use crate::support::{PAID, STORE, World, available, completed, order, session, world};

/// A `charge.refunded` envelope for the sample session's payment (`pi_{session}`).
fn refunded(event: &str, session: &str, amount_refunded: u64, in_full: bool) -> Value {
    envelope(
        event,
        "charge.refunded",
        json!({"id": format!("ch_{session}"), "object": "charge",
               "payment_intent": format!("pi_{session}"), "amount": 2000,
               "amount_refunded": amount_refunded, "refunded": in_full, "created": PAID}),
    )
}

fn dispute_closed(event: &str, session: &str, status: &str) -> Value {
    envelope(
        event,
        "charge.dispute.closed",
        json!({"id": "dp_1", "object": "dispute", "charge": format!("ch_{session}"),
               "payment_intent": format!("pi_{session}"), "status": status}),
    )
}

fn envelope(event: &str, kind: &str, object: Value) -> Value {
    let mut v = completed(event, "cs_x");
    v["detail"]["type"] = json!(kind);
    v["detail"]["data"]["object"] = object;
    v
}

/// A world with `prod_a` at 5, a paid order of 2 applied, its payment findable, and the store's
/// policy.
async fn sold(policy: ReturnsPolicy) -> World {
    let w = world(&[("prod_a", 5, 0)]);
    session(&w, "cs_1", &[("prod_a", 2)]);
    w.payments
        .payment_orders
        .lock()
        .unwrap()
        .insert("pi_cs_1".into(), OrderId::parse("cs_1").unwrap());
    w.store
        .set_returns_policy(&StoreId::parse(STORE).unwrap(), policy)
        .await
        .unwrap();
    w.app.handle(&completed("evt_paid", "cs_1")).await.unwrap();
    assert_eq!(available(&w, "prod_a"), 3);
    w
}

fn outcome(h: Handled) -> Outcome {
    match h {
        Handled::Applied { outcome, .. } => outcome,
        other => panic!("expected an applied outcome, got {other:?}"),
    }
}

const REFUNDS: ReturnsPolicy = ReturnsPolicy {
    refunds: true,
    lost_disputes: false,
};

#[tokio::test]
async fn a_refund_in_full_returns_the_units_once_with_a_ledger_entry() {
    let w = sold(REFUNDS).await;
    let event = refunded("evt_ref", "cs_1", 2000, true);
    let first = outcome(w.app.handle(&event).await.unwrap());
    assert_eq!(first, Outcome::Returned(ReturnCause::Refund));
    assert_eq!(available(&w, "prod_a"), 5);
    // Delivered again, and replayed by the reconciler: nothing more.
    w.app.handle(&event).await.unwrap();
    w.app.handle_stripe_event(&event["detail"]).await.unwrap();
    assert_eq!(available(&w, "prod_a"), 5);
    let ledger = w.store.snapshot().ledger;
    let returns: Vec<_> = ledger
        .iter()
        .filter(|e| e.cause.kind == CauseKind::Return)
        .collect();
    assert_eq!(returns.len(), 1);
    assert_eq!((returns[0].delta, returns[0].level), (2, 5));
    let after = order(&w, "cs_1").unwrap().after_sale.unwrap();
    assert_eq!((after.refunded, after.refunded_in_full), (2000, true));
    let latest = w.publisher.latest();
    let level = latest
        .values()
        .find(|l| l.product_id.as_str() == "prod_a")
        .unwrap();
    assert_eq!(level.available, 5);
}

#[tokio::test]
async fn by_default_a_refund_is_recorded_and_the_stock_stays() {
    let w = sold(ReturnsPolicy::default()).await;
    let o = outcome(
        w.app
            .handle(&refunded("evt_ref", "cs_1", 2000, true))
            .await
            .unwrap(),
    );
    assert_eq!(o, Outcome::AfterSaleRecorded);
    assert_eq!(available(&w, "prod_a"), 3);
    assert!(
        order(&w, "cs_1")
            .unwrap()
            .after_sale
            .unwrap()
            .refunded_in_full
    );
}

#[tokio::test]
async fn a_partial_refund_returns_nothing_and_a_lost_dispute_returns_the_units_when_set() {
    let w = sold(ReturnsPolicy {
        refunds: true,
        lost_disputes: true,
    })
    .await;
    let partial = refunded("evt_p", "cs_1", 500, false);
    assert_eq!(
        outcome(w.app.handle(&partial).await.unwrap()),
        Outcome::AfterSaleRecorded
    );
    assert_eq!(available(&w, "prod_a"), 3);
    let won = dispute_closed("evt_won", "cs_1", "lost");
    assert_eq!(
        outcome(w.app.handle(&won).await.unwrap()),
        Outcome::Returned(ReturnCause::DisputeLost)
    );
    assert_eq!(available(&w, "prod_a"), 5);
    // The rest refunded afterwards: the units went back already.
    let rest = refunded("evt_rest", "cs_1", 2000, true);
    assert_eq!(
        outcome(w.app.handle(&rest).await.unwrap()),
        Outcome::AfterSaleRecorded
    );
    assert_eq!(available(&w, "prod_a"), 5);
}

#[tokio::test]
async fn a_payment_that_is_no_order_of_stockbridges_is_left_alone() {
    let w = sold(REFUNDS).await;
    // Not a session or a hold at Stripe.
    let other = refunded("evt_o", "cs_other", 2000, true);
    assert_eq!(w.app.handle(&other).await.unwrap(), Handled::Ignored);
    // A session stockbridge never recorded, paid long ago (before its start).
    w.payments
        .payment_orders
        .lock()
        .unwrap()
        .insert("pi_cs_old".into(), OrderId::parse("cs_old").unwrap());
    let mut old = refunded("evt_old", "cs_old", 2000, true);
    old["detail"]["data"]["object"]["created"] = json!(PAID - 86_400);
    assert_eq!(outcome(w.app.handle(&old).await.unwrap()), Outcome::NoOrder);
    assert_eq!(available(&w, "prod_a"), 3);
}

#[tokio::test]
async fn a_refund_that_overtakes_its_orders_event_is_retried_until_the_order_is_recorded() {
    let w = world(&[("prod_a", 5, 0)]);
    session(&w, "cs_2", &[("prod_a", 1)]);
    w.payments
        .payment_orders
        .lock()
        .unwrap()
        .insert("pi_cs_2".into(), OrderId::parse("cs_2").unwrap());
    w.store
        .set_returns_policy(&StoreId::parse(STORE).unwrap(), REFUNDS)
        .await
        .unwrap();
    // Paid a moment ago (the world's clock is at PAID).
    let early = refunded("evt_early", "cs_2", 2000, true);
    let err = w.app.handle(&early).await.unwrap_err();
    assert!(
        matches!(err, HandleError::NotRecordedYet { .. }) && err.is_retryable(),
        "{err}"
    );
    w.app.handle(&completed("evt_paid2", "cs_2")).await.unwrap();
    assert_eq!(available(&w, "prod_a"), 4);
    w.app.handle(&early).await.unwrap();
    assert_eq!(available(&w, "prod_a"), 5);
}

#[tokio::test]
async fn stockbridges_own_refund_is_announced_once_and_its_charge_event_returns_nothing() {
    let mut w = world(&[("prod_a", 1, 0)]);
    let events = MemoryMerchantEvents::default();
    w.app = w.app.with_merchant_events(events.clone());
    session(&w, "cs_3", &[("prod_a", 2)]);
    w.payments
        .payment_orders
        .lock()
        .unwrap()
        .insert("pi_cs_3".into(), OrderId::parse("cs_3").unwrap());
    w.store
        .set_returns_policy(&StoreId::parse(STORE).unwrap(), REFUNDS)
        .await
        .unwrap();
    // Oversold: refunded by stockbridge; the event fails once, so the refund is not recorded
    // and the redelivery refunds again (the same refund) and announces it.
    events.fail_next(1);
    let paid = completed("evt_over", "cs_3");
    assert!(w.app.handle(&paid).await.unwrap_err().is_retryable());
    assert!(order(&w, "cs_3").unwrap().refund_id.is_none());
    w.app.handle(&paid).await.unwrap();
    let refund_id = order(&w, "cs_3").unwrap().refund_id.unwrap();
    let published = events.published();
    assert_eq!(published.len(), 1);
    let (kind, detail) = &published[0];
    assert_eq!(kind, "stockbridge.order_refunded");
    assert_eq!(detail["order_id"], "cs_3");
    assert_eq!(detail["refund_id"], refund_id.as_str());
    assert_eq!(detail["reason"], "oversold");
    assert_eq!(
        detail["products"],
        json!([{"product_id": "prod_a", "quantity": 2}])
    );
    assert_eq!(
        detail["shortfalls"],
        json!([{"product_id": "prod_a", "requested": 2, "available": 1}])
    );
    w.app.handle(&paid).await.unwrap();
    assert_eq!(
        events.published().len(),
        1,
        "a recorded refund is not announced again"
    );
    // Stripe's charge.refunded for that refund: recorded, and no unit comes back (none left).
    let own = refunded("evt_own", "cs_3", 2000, true);
    assert_eq!(
        outcome(w.app.handle(&own).await.unwrap()),
        Outcome::AfterSaleRecorded
    );
    assert_eq!(available(&w, "prod_a"), 1);
    assert_eq!(order(&w, "cs_3").unwrap().refund_id, Some(refund_id));
}

//! One failure never disables the rest: a repair Stripe refuses is parked with its reason and
//! skipped by later runs, and the other checks still run.

use crate::support::{STORE, completed, order, session, world};
use stockbridge_app::parking::ParkedState;
use stockbridge_domain::{OrderStatus, PaymentLinkId, ProductId, StoreId};

#[tokio::test]
async fn a_refund_stripe_refuses_is_parked_and_the_other_checks_still_run() {
    // GIVEN an oversold order whose charge is disputed (Stripe refuses the refund)
    let w = world(&[("prod_a", 0, 0), ("prod_b", 0, 0)]);
    session(&w, "cs_disputed", &[("prod_a", 1)]);
    w.payments
        .refuse_refunds
        .lock()
        .unwrap()
        .insert("pi_cs_disputed".into());
    let delivered = w.app.handle(&completed("evt_d", "cs_disputed")).await;
    assert!(delivered.is_err(), "the refund failed after the commit");
    assert_eq!(
        order(&w, "cs_disputed").unwrap().status,
        OrderStatus::Oversold
    );
    // AND prod_b's link is on at 0 (someone switched it on)
    let link_b = PaymentLinkId::parse("plink_prod_b").unwrap();
    // WHEN the reconciler checks
    let r = w.app.check_invariants(None, None, false).await.unwrap();
    // THEN the refund is parked with its reason, and the link check still ran
    assert_eq!(r.parked, vec!["refund:cs_disputed"], "{r:?}");
    assert!(!w.payments.link_active(&link_b), "{r:?}");
    let record = w.store.parking.lock().unwrap()["refund:cs_disputed"].clone();
    assert_eq!(record.state, ParkedState::Parked);
    assert!(record.reason.contains("disputed"), "{record:?}");
    // AND later runs leave it alone: no refund call
    let refunds = |w: &crate::support::World| {
        w.payments
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| **c == "refund")
            .count()
    };
    let before = refunds(&w);
    let again = w.app.check_invariants(None, None, false).await.unwrap();
    assert!(again.parked.is_empty());
    assert_eq!(refunds(&w), before);
    let item = &w.store.snapshot().items[&(
        StoreId::parse(STORE).unwrap(),
        ProductId::parse("prod_a").unwrap(),
    )];
    assert_eq!(item.available, 0);
}

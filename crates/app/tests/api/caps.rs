//! The caps on the public checkout (in-memory ports): per e-mail, per client address, failed
//! payments, and a retry that never counts.

use stockbridge_app::reservations::{HoldLimits, ReservationReply, caps};

use crate::holds_support::*;

fn with(
    email: Option<&str>,
    client: Option<&str>,
    q: u64,
) -> stockbridge_app::reservations::ReservationRequest {
    let mut r = request(q);
    r.customer_email = email.map(str::to_owned);
    r.client = client.and_then(caps::client_key);
    r
}

fn limited(r: &ReservationReply) -> bool {
    matches!(r, ReservationReply::Limited { retry_after, .. } if *retry_after >= 1)
}

#[tokio::test]
async fn an_email_gets_three_holds_a_period_and_a_retry_never_counts() {
    let (inv, _, _, _) = setup(20).await;
    let limits = HoldLimits::default();
    let req = with(Some("a@b.co"), None, 1);
    for key in ["k1", "k2", "k3"] {
        held(&inv.reserve(&req, key, &limits, TIME).await.unwrap());
        // The same key again is the same hold, not a new one.
        held(&inv.reserve(&req, key, &limits, TIME).await.unwrap());
    }
    assert!(limited(
        &inv.reserve(&req, "k4", &limits, TIME).await.unwrap()
    ));
    // Another e-mail is not concerned.
    let other = with(Some("c@d.co"), None, 1);
    held(&inv.reserve(&other, "k5", &limits, TIME).await.unwrap());
}

#[tokio::test]
async fn an_address_is_a_backstop_and_an_ipv6_address_is_its_64() {
    let (inv, _, _, _) = setup(20).await;
    let limits = HoldLimits {
        holds_per_client: 2,
        ..HoldLimits::default()
    };
    held(
        &inv.reserve(&with(None, Some("2001:db8::1"), 1), "k1", &limits, TIME)
            .await
            .unwrap(),
    );
    held(
        &inv.reserve(&with(None, Some("2001:db8::2"), 1), "k2", &limits, TIME)
            .await
            .unwrap(),
    );
    let third = inv
        .reserve(&with(None, Some("2001:db8::3"), 1), "k3", &limits, TIME)
        .await
        .unwrap();
    assert!(limited(&third), "{third:?}");
    held(
        &inv.reserve(&with(None, Some("2001:db9::1"), 1), "k4", &limits, TIME)
            .await
            .unwrap(),
    );
}

#[tokio::test]
async fn every_failed_payment_counts_once_and_refuses_the_email_and_the_address() {
    let (inv, _, _, _) = setup(20).await;
    let limits = HoldLimits {
        failures_per_hour: 2,
        failures_per_client_hour: 2,
        holds_per_email: 10,
        ..HoldLimits::default()
    };
    let (hold, _, _) = held(
        &inv.reserve(
            &with(Some("t@e.st"), Some("192.0.2.9"), 1),
            "k1",
            &limits,
            TIME,
        )
        .await
        .unwrap(),
    );
    let failed = |evt: &str| intent_event("payment_intent.payment_failed", "pi_1", &hold, evt);
    // One card declined, delivered twice: one failure.
    inv.handle(&failed("evt_a")).await.unwrap();
    inv.handle(&failed("evt_a")).await.unwrap();
    held(
        &inv.reserve(
            &with(Some("t@e.st"), Some("192.0.2.9"), 1),
            "k2",
            &limits,
            TIME,
        )
        .await
        .unwrap(),
    );
    // A second card on the same PaymentIntent: the hold is released already, it still counts.
    inv.handle(&failed("evt_b")).await.unwrap();
    // Same e-mail from elsewhere, and the same address without an e-mail: both refused.
    let by_email = inv
        .reserve(
            &with(Some("t@e.st"), Some("192.0.2.10"), 1),
            "k3",
            &limits,
            TIME,
        )
        .await
        .unwrap();
    assert!(limited(&by_email), "{by_email:?}");
    let by_address = inv
        .reserve(&with(None, Some("192.0.2.9"), 1), "k4", &limits, TIME)
        .await
        .unwrap();
    assert!(limited(&by_address), "{by_address:?}");
    held(
        &inv.reserve(
            &with(Some("ok@e.st"), Some("192.0.2.11"), 1),
            "k5",
            &limits,
            TIME,
        )
        .await
        .unwrap(),
    );
}

#[tokio::test]
async fn a_request_that_holds_nothing_gives_its_slots_back() {
    let (inv, _, _, _) = setup(1).await;
    let limits = HoldLimits::default(); // 3 holds per e-mail
    let req = with(Some("a@b.co"), None, 2);
    for key in ["k1", "k2", "k3", "k4"] {
        let r = inv.reserve(&req, key, &limits, TIME).await.unwrap();
        assert!(
            matches!(r, ReservationReply::Short(_)),
            "short, never limited: {r:?}"
        );
    }
    held(
        &inv.reserve(&with(Some("a@b.co"), None, 1), "k5", &limits, TIME)
            .await
            .unwrap(),
    );
}

#[tokio::test]
async fn a_buyers_purchase_limit_counts_held_and_sold_units_and_returns_unpaid_ones() {
    let (inv, _, payments, _) = setup(20).await;
    let limits = HoldLimits {
        units_per_email: 3,
        ..HoldLimits::default()
    };
    let no_email = inv
        .reserve(&with(None, None, 1), "k0", &limits, TIME)
        .await
        .unwrap();
    assert!(
        matches!(&no_email, ReservationReply::Invalid(e) if e.field == "customer_email"),
        "{no_email:?}"
    );
    let (first, _, _) = held(
        &inv.reserve(&with(Some("d@rop.co"), None, 2), "k1", &limits, TIME)
            .await
            .unwrap(),
    );
    let over = inv
        .reserve(&with(Some("d@rop.co"), None, 2), "k2", &limits, TIME)
        .await
        .unwrap();
    assert!(limited(&over), "2 + 2 is over 3: {over:?}");
    // The first payment fails: its 2 units come back to the buyer.
    inv.handle(&intent_event(
        "payment_intent.payment_failed",
        "pi_1",
        &first,
        "evt_f",
    ))
    .await
    .unwrap();
    held(
        &inv.reserve(&with(Some("d@rop.co"), None, 2), "k3", &limits, TIME)
            .await
            .unwrap(),
    );
    // The first is paid late after all (Stripe still holds it): its units count again.
    payments.authorize(&stockbridge_domain::PaymentIntentId::parse("pi_1").unwrap());
    inv.handle(&intent_event(
        "payment_intent.amount_capturable_updated",
        "pi_1",
        &first,
        "evt_a",
    ))
    .await
    .unwrap();
    let one_more = inv
        .reserve(&with(Some("d@rop.co"), None, 1), "k4", &limits, TIME)
        .await
        .unwrap();
    assert!(limited(&one_more), "4 units held or sold: {one_more:?}");
    // Another buyer is not concerned.
    held(
        &inv.reserve(&with(Some("e@rop.co"), None, 3), "k5", &limits, TIME)
            .await
            .unwrap(),
    );
}

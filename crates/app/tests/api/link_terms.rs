//! An order from a Payment Link stockbridge made is decided from the session's own amounts,
//! with no Stripe call (issue 13 §1); anything they do not prove lists the line items.

use serde_json::{Value, json};
use stockbridge_app::ports::InventoryStore;
use stockbridge_domain::{LinkTerms, OrderStatus, PaymentLinkId, ProductId};

use crate::support::*;

/// The boundary is long before the sample event: its orders are sales.
const LONG_AGO: i64 = 1_700_000_000;

async fn world_with_terms(unit_amount: u64, max_quantity: u64) -> World {
    let w = world(&[("prod_tee", 5, LONG_AGO)]);
    let terms = LinkTerms {
        product_id: ProductId::parse("prod_tee").unwrap(),
        unit_amount,
        currency: "usd".into(),
        max_quantity,
    };
    w.store
        .remember_link_terms(&PaymentLinkId::parse("plink_prod_tee").unwrap(), &terms)
        .await
        .unwrap();
    w
}

fn from_link(event_id: &str, session: &str, currency: &str, subtotal: u64) -> Value {
    let mut v = completed(event_id, session);
    let o = &mut v["detail"]["data"]["object"];
    o["payment_link"] = json!("plink_prod_tee");
    o["currency"] = json!(currency);
    o["amount_subtotal"] = json!(subtotal);
    v
}

fn stripe_calls(w: &World) -> Vec<&'static str> {
    w.payments.calls.lock().unwrap().clone()
}

#[tokio::test]
async fn an_order_from_a_link_stockbridge_made_needs_no_stripe_call() {
    let w = world_with_terms(1500, 5).await;
    w.app
        .handle(&from_link("evt_1", "cs_1", "usd", 4500))
        .await
        .unwrap();
    assert_eq!(available(&w, "prod_tee"), 2, "3 units: 4500 / 1500");
    assert_eq!(order(&w, "cs_1").unwrap().status, OrderStatus::Fulfilled);
    assert_eq!(stripe_calls(&w), Vec::<&str>::new());
    // A redelivery is the same order.
    w.app
        .handle(&from_link("evt_1", "cs_1", "usd", 4500))
        .await
        .unwrap();
    assert_eq!(available(&w, "prod_tee"), 2);
}

#[tokio::test]
async fn a_short_order_from_such_a_link_is_refunded_in_full_still_without_a_listing() {
    let w = world_with_terms(1500, 10).await;
    w.app
        .handle(&from_link("evt_1", "cs_1", "usd", 9000))
        .await
        .unwrap();
    let o = order(&w, "cs_1").unwrap();
    assert_eq!((o.status, o.refund_amount), (OrderStatus::Oversold, None));
    assert_eq!(available(&w, "prod_tee"), 5);
    assert_eq!(stripe_calls(&w), vec!["refund"]);
}

#[tokio::test]
async fn amounts_the_links_price_does_not_explain_list_the_line_items() {
    // The link was made at 1500; the session says 2000 (its items changed at Stripe, or a
    // price changed since): Stripe's own line items decide.
    let w = world_with_terms(1500, 1).await;
    session(&w, "cs_1", &[("prod_tee", 1)]);
    w.app
        .handle(&from_link("evt_1", "cs_1", "usd", 2000))
        .await
        .unwrap();
    assert_eq!(available(&w, "prod_tee"), 4);
    assert_eq!(stripe_calls(&w), vec!["line_items"]);
    // Another currency, likewise.
    session(&w, "cs_2", &[("prod_tee", 1)]);
    w.app
        .handle(&from_link("evt_2", "cs_2", "eur", 1500))
        .await
        .unwrap();
    assert_eq!(stripe_calls(&w), vec!["line_items", "line_items"]);
    // Two units through a one-unit link: a cross-sell was bought with it.
    session(&w, "cs_3", &[("prod_tee", 1), ("prod_mug", 1)]);
    w.app
        .handle(&from_link("evt_3", "cs_3", "usd", 3000))
        .await
        .unwrap();
    assert_eq!(
        available(&w, "prod_tee"),
        2,
        "one tee (and the mug, unknown here)"
    );
    assert_eq!(stripe_calls(&w).len(), 3);
}

#[tokio::test]
async fn a_link_stockbridge_did_not_make_lists_the_line_items() {
    let w = world(&[("prod_tee", 5, LONG_AGO)]);
    session(&w, "cs_1", &[("prod_tee", 3)]);
    w.app
        .handle(&from_link("evt_1", "cs_1", "usd", 4500))
        .await
        .unwrap();
    assert_eq!(available(&w, "prod_tee"), 2);
    assert_eq!(stripe_calls(&w), vec!["line_items"]);
}

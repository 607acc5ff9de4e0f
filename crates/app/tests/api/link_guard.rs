//! The link guard (issue 16 §1, docs/link-guard.md): a Payment Link stockbridge made carries a
//! completed-sessions limit in step with stock, so Stripe stops selling at the last unit even
//! when the switch-off is late; Stripe's switch at that limit is stockbridge's to undo, a
//! person's never is.

use serde_json::{Value, json};
use stockbridge_app::ports::{Control, ControlStore, InventoryStore};
use stockbridge_domain::link_guard::{LinkGuard, LinkLimit};
use stockbridge_domain::{LinkTerms, PaymentLinkId, ProductId, StockChange, StoreId};

use crate::support::*;

/// Orders are sales: the boundary is long before the sample event.
const LONG_AGO: i64 = 1_700_000_000;

fn tee_link() -> PaymentLinkId {
    PaymentLinkId::parse("plink_prod_tee").unwrap()
}

fn ids(p: &str) -> (StoreId, ProductId) {
    (StoreId::parse(STORE).unwrap(), ProductId::parse(p).unwrap())
}

/// prod_tee (its link made by stockbridge: one unit a session) and prod_mug (a link
/// stockbridge did not make), both with `stock` units.
async fn shop(stock: u64) -> World {
    let w = world(&[("prod_tee", stock, LONG_AGO), ("prod_mug", stock, LONG_AGO)]);
    let terms = LinkTerms {
        product_id: ProductId::parse("prod_tee").unwrap(),
        unit_amount: 1500,
        currency: "usd".into(),
        max_quantity: 1,
    };
    w.store
        .remember_link_terms(&tee_link(), &terms)
        .await
        .unwrap();
    w
}

async fn set_stock(w: &World, p: &str, n: u64) {
    let (s, p) = ids(p);
    w.app
        .change_stock(&s, &p, StockChange::Set(n), None, "test")
        .await
        .unwrap();
}

/// The paid order of a buyer who got through the link at Stripe.
fn tee_order(n: u32) -> Value {
    let mut v = completed(&format!("evt_{n}"), &format!("cs_{n}"));
    let o = &mut v["detail"]["data"]["object"];
    o["payment_link"] = json!("plink_prod_tee");
    o["currency"] = json!("usd");
    o["amount_subtotal"] = json!(1500);
    v
}

/// Buyers try the link at Stripe; the orders of those Stripe took are then delivered. How many
/// orders were refunded (oversold).
async fn burst(w: &World, buyers: u32) -> usize {
    let mut paid = Vec::new();
    for n in 0..buyers {
        if w.payments.complete_link_session(&tee_link()) {
            paid.push(n);
        }
    }
    for n in &paid {
        w.app.handle(&tee_order(*n)).await.unwrap();
    }
    w.payments.refunds.lock().unwrap().len()
}

#[tokio::test]
async fn stock_set_limits_only_the_links_stockbridge_made() {
    let w = shop(5).await;
    set_stock(&w, "prod_tee", 8).await;
    set_stock(&w, "prod_mug", 8).await;
    assert_eq!(
        w.payments.link_limit(&tee_link()),
        LinkLimit::Ours(LinkGuard { count: 0, limit: 8 })
    );
    let mug = PaymentLinkId::parse("plink_prod_mug").unwrap();
    assert_eq!(
        w.payments.link_limit(&mug),
        LinkLimit::None,
        "unknown terms"
    );
    // A count down is followed too (the other channels' sales are not counted by the link).
    set_stock(&w, "prod_tee", 3).await;
    assert_eq!(
        w.payments.link_limit(&tee_link()),
        LinkLimit::Ours(LinkGuard { count: 0, limit: 3 })
    );
}

#[tokio::test]
async fn with_switches_late_the_guard_stops_the_burst_at_the_stock() {
    // Link switches paused: the sell-out's switch-off never comes, as when it is late.
    let guarded = shop(3).await;
    set_stock(&guarded, "prod_tee", 3).await;
    guarded
        .store
        .set_control(Control::Links, true)
        .await
        .unwrap();
    assert_eq!(
        burst(&guarded, 8).await,
        0,
        "Stripe took 3 buyers, no refund"
    );
    assert_eq!(available(&guarded, "prod_tee"), 0);

    let unguarded = shop(3).await;
    unguarded
        .store
        .set_control(Control::Links, true)
        .await
        .unwrap();
    assert_eq!(burst(&unguarded, 8).await, 5, "5 paid and refunded");
}

#[tokio::test]
async fn stripes_switch_at_the_limit_is_stockbridges_and_the_restock_undoes_it() {
    let w = shop(2).await;
    set_stock(&w, "prod_tee", 2).await;
    assert_eq!(burst(&w, 2).await, 0);
    assert!(
        !w.payments.link_active(&tee_link()),
        "Stripe's switch at the limit"
    );
    let item = w.store.snapshot().items[&ids("prod_tee")].clone();
    assert_eq!(
        item.deactivated_links,
        vec![tee_link()],
        "the sell-out found it off at stockbridge's limit: recorded as stockbridge's"
    );
    let before = w.payments.calls.lock().unwrap().len();
    set_stock(&w, "prod_tee", 4).await;
    assert!(w.payments.link_active(&tee_link()));
    assert_eq!(
        w.payments.link_limit(&tee_link()),
        LinkLimit::Ours(LinkGuard { count: 2, limit: 6 }),
        "on again with room for the 4 new units"
    );
    assert_eq!(
        w.payments.calls.lock().unwrap()[before..],
        ["read_link", "guard_link"],
        "one read and one update: the stock change does not read the restocked link again"
    );
}

#[tokio::test]
async fn the_reconciler_undoes_stripes_early_switch_but_never_a_persons() {
    let w = shop(2).await;
    set_stock(&w, "prod_tee", 2).await;
    // Units come back outside the link (holds lapse): the limit is now too low.
    let mut item = w.store.snapshot().items[&ids("prod_tee")].clone();
    item.available = 5;
    w.store.put_item(item);
    assert_eq!(burst(&w, 2).await, 0);
    assert!(
        !w.payments.link_active(&tee_link()),
        "off early, with 3 units left"
    );
    let report = w.app.check_link_invariants(None, false).await.unwrap();
    assert_eq!(report.repaired, 1, "{report:?}");
    assert!(w.payments.link_active(&tee_link()));
    assert_eq!(
        w.payments.link_limit(&tee_link()),
        LinkLimit::Ours(LinkGuard { count: 2, limit: 5 })
    );

    // A person switches the link off below the limit: theirs, left off.
    w.payments.links.lock().unwrap().insert(tee_link(), false);
    let report = w.app.check_link_invariants(None, false).await.unwrap();
    assert_eq!(report.repaired, 0, "{report:?}");
    assert!(!w.payments.link_active(&tee_link()));
}

#[tokio::test]
async fn the_reconciler_sets_missing_limits_lowers_high_ones_never_raises_and_leaves_a_merchants() {
    let w = shop(4).await;
    let calls = |w: &World| w.payments.calls.lock().unwrap().clone();
    // No limit yet (a link made before the guard): the reconciler sets one.
    let report = w.app.check_link_invariants(None, false).await.unwrap();
    assert_eq!(report.guards_set, 1, "{report:?}");
    assert_eq!(
        w.payments.link_limit(&tee_link()),
        LinkLimit::Ours(LinkGuard { count: 0, limit: 4 })
    );
    let before = calls(&w).len();
    let again = w.app.check_link_invariants(None, false).await.unwrap();
    assert_eq!(again.guards_set, 0);
    assert_eq!(
        calls(&w)[before..],
        [] as [&str; 0],
        "in step: nothing read or sent"
    );

    // Units held elsewhere (a checkout hold): the limit comes down to what is left.
    let mut item = w.store.snapshot().items[&ids("prod_tee")].clone();
    item.available = 1;
    w.store.put_item(item.clone());
    let report = w.app.check_link_invariants(None, false).await.unwrap();
    assert_eq!(report.guards_set, 1);
    assert_eq!(
        w.payments.link_limit(&tee_link()),
        LinkLimit::Ours(LinkGuard { count: 0, limit: 1 })
    );
    // The hold lapses: the reconciler does not raise the limit (Stripe's count may be ahead
    // of the stock); the link check switches the link on if it goes off early.
    item.available = 4;
    w.store.put_item(item);
    let report = w.app.check_link_invariants(None, false).await.unwrap();
    assert_eq!(report.guards_set, 0);
    assert_eq!(
        w.payments.link_limit(&tee_link()),
        LinkLimit::Ours(LinkGuard { count: 0, limit: 1 })
    );

    // A merchant's limit: not read for a guard, not changed.
    w.payments.set_foreign_limit(&tee_link(), 9);
    let before = calls(&w).len();
    let report = w.app.check_link_invariants(None, false).await.unwrap();
    assert_eq!(report.guards_set, 0);
    assert_eq!(w.payments.link_limit(&tee_link()), LinkLimit::Theirs);
    assert_eq!(calls(&w)[before..], [] as [&str; 0], "nothing read or sent");
}

#[tokio::test]
async fn a_stock_set_after_stripes_early_switch_switches_the_link_on_with_its_new_limit() {
    let w = shop(2).await;
    set_stock(&w, "prod_tee", 2).await;
    // Units come back outside the link, then Stripe switches the link off at its limit.
    let mut item = w.store.snapshot().items[&ids("prod_tee")].clone();
    item.available = 4;
    w.store.put_item(item);
    assert_eq!(burst(&w, 2).await, 0);
    assert!(!w.payments.link_active(&tee_link()));
    // The merchant's count: the link must not stay off below its new limit (it would look like
    // a person's switch-off from then on, and never be switched on again).
    set_stock(&w, "prod_tee", 5).await;
    assert!(w.payments.link_active(&tee_link()));
    assert_eq!(
        w.payments.link_limit(&tee_link()),
        LinkLimit::Ours(LinkGuard { count: 2, limit: 7 })
    );
}

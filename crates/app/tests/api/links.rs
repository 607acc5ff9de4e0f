//! Payment links: stockbridge switches back on only the links it switched off itself, never
//! re-sends a switch that changes nothing, and a late switch acts on the level at call time.

use crate::support::{STORE, World, available, completed, session, world};
use stockbridge_app::effects::run_effects;
use stockbridge_domain::{
    Deactivation, Effects, PaymentLinkId, ProductId, Reactivation, StockChange, StoreId, Timestamp,
};

fn link(s: &str) -> PaymentLinkId {
    PaymentLinkId::parse(s).unwrap()
}

fn ids() -> (StoreId, ProductId) {
    (
        StoreId::parse(STORE).unwrap(),
        ProductId::parse("prod_a").unwrap(),
    )
}

fn calls(w: &World, op: &str) -> usize {
    w.payments
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| **c == op)
        .count()
}

/// A paid order for prod_a through its own link.
fn sale(event_id: &str, session: &str) -> serde_json::Value {
    let mut v = completed(event_id, session);
    v["detail"]["data"]["object"]["payment_link"] = "plink_prod_a".into();
    v
}

fn recorded(w: &World) -> Vec<PaymentLinkId> {
    w.store.snapshot().items[&ids()].deactivated_links.clone()
}

/// plink_prod_a off, recorded as switched off by stockbridge, with nothing else changed.
fn switched_off_by_stockbridge(w: &World) {
    let mut item = w.store.snapshot().items[&ids()].clone();
    item.deactivated_links = vec![link("plink_prod_a")];
    w.store.put_item(item);
    w.payments
        .links
        .lock()
        .unwrap()
        .insert(link("plink_prod_a"), false);
}

/// prod_a with 1 unit sold through plink_prod_a, and a second link a person switched off.
fn two_links(w: &World) -> PaymentLinkId {
    let mut item = w.store.snapshot().items[&ids()].clone();
    let human = link("plink_human");
    item.payment_links.push(human.clone());
    w.store.put_item(item);
    w.payments
        .links
        .lock()
        .unwrap()
        .insert(human.clone(), false);
    human
}

#[tokio::test]
async fn a_link_someone_switched_off_before_the_sell_out_stays_off_at_the_restock() {
    let w = world(&[("prod_a", 1, 0)]);
    let human = two_links(&w);
    session(&w, "cs_last", &[("prod_a", 1)]);
    w.app.handle(&sale("evt_last", "cs_last")).await.unwrap();
    assert_eq!(available(&w, "prod_a"), 0);
    assert!(!w.payments.link_active(&link("plink_prod_a")));
    assert_eq!(
        recorded(&w),
        vec![link("plink_prod_a")],
        "only the link stockbridge switched"
    );
    let (s, p) = ids();
    w.app
        .change_stock(&s, &p, StockChange::Set(5), None, "test")
        .await
        .unwrap();
    assert!(w.payments.link_active(&link("plink_prod_a")));
    assert!(
        !w.payments.link_active(&human),
        "a person's choice is not undone"
    );
}

#[tokio::test]
async fn a_redelivered_sell_out_re_sends_no_switch_and_keeps_its_own_record() {
    let w = world(&[("prod_a", 1, 0)]);
    session(&w, "cs_last", &[("prod_a", 1)]);
    let event = sale("evt_last", "cs_last");
    w.app.handle(&event).await.unwrap();
    let switches = calls(&w, "set_link_active");
    w.app.handle(&event).await.unwrap();
    assert_eq!(
        calls(&w, "set_link_active"),
        switches,
        "nothing to change: nothing sent"
    );
    assert_eq!(
        recorded(&w),
        vec![link("plink_prod_a")],
        "found off: its own switch"
    );
}

#[tokio::test]
async fn a_late_switch_on_does_not_land_after_a_sell_out() {
    // The item sold out again after a restock whose switch-on is only running now.
    let w = world(&[("prod_a", 0, 0)]);
    switched_off_by_stockbridge(&w);
    let (s, p) = ids();
    let late = Effects {
        reactivate: vec![Reactivation {
            store_id: s,
            product_id: p,
            links: vec![link("plink_prod_a")],
        }],
        ..Effects::default()
    };
    run_effects(
        (&w.store, &w.publisher, &w.payments),
        &stockbridge_app::ports::NoMerchantEvents,
        &late,
        Timestamp(0),
    )
    .await
    .unwrap();
    assert!(!w.payments.link_active(&link("plink_prod_a")));
    assert_eq!(recorded(&w), vec![link("plink_prod_a")]);
}

#[tokio::test]
async fn a_late_switch_off_does_not_land_after_a_restock() {
    let w = world(&[("prod_a", 3, 0)]);
    let (s, p) = ids();
    let late = Effects {
        deactivate: vec![Deactivation {
            store_id: s,
            product_id: p,
            fresh: vec![link("plink_prod_a")],
            recorded: Vec::new(),
        }],
        ..Effects::default()
    };
    run_effects(
        (&w.store, &w.publisher, &w.payments),
        &stockbridge_app::ports::NoMerchantEvents,
        &late,
        Timestamp(0),
    )
    .await
    .unwrap();
    assert!(w.payments.link_active(&link("plink_prod_a")));
    assert_eq!(calls(&w, "set_link_active"), 0);
}

#[tokio::test]
async fn a_link_off_with_stockbridges_own_message_stays_recorded_at_the_sell_out() {
    // The reconciler (or another item's sell-out) switched it off between the commit and the
    // effect: found off, but with stockbridge's message — still stockbridge's to switch on.
    let w = world(&[("prod_a", 1, 0)]);
    w.payments
        .links
        .lock()
        .unwrap()
        .insert(link("plink_prod_a"), false);
    w.payments.link_messages.lock().unwrap().insert(
        link("plink_prod_a"),
        stockbridge_app::effects::SOLD_OUT_MESSAGE.to_owned(),
    );
    session(&w, "cs_last", &[("prod_a", 1)]);
    w.app.handle(&sale("evt_last", "cs_last")).await.unwrap();
    assert_eq!(recorded(&w), vec![link("plink_prod_a")]);
    let (s, p) = ids();
    w.app
        .change_stock(&s, &p, StockChange::Set(2), None, "test")
        .await
        .unwrap();
    assert!(w.payments.link_active(&link("plink_prod_a")));
}

/// Payments whose link switch-on lets a sell-out commit first (a concurrent Lambda).
struct SellOutDuringSwitchOn {
    inner: stockbridge_app::memory::MemoryPayments,
    store: stockbridge_app::memory::MemoryStore,
}

impl stockbridge_app::ports::Payments for SellOutDuringSwitchOn {
    async fn line_items(
        &self,
        s: &stockbridge_domain::OrderId,
    ) -> Result<Vec<stockbridge_app::ports::SessionLine>, stockbridge_app::ports::PaymentsError>
    {
        self.inner.line_items(s).await
    }
    async fn refund(
        &self,
        r: &stockbridge_domain::RefundRequest,
    ) -> Result<stockbridge_domain::RefundId, stockbridge_app::ports::PaymentsError> {
        self.inner.refund(r).await
    }
    async fn set_link_active(
        &self,
        l: &PaymentLinkId,
        active: bool,
        m: Option<&str>,
    ) -> Result<stockbridge_app::ports::LinkSwitch, stockbridge_app::ports::PaymentsError> {
        if active {
            let mut item = self.store.snapshot().items[&ids()].clone();
            item.available = 0;
            self.store.put_item(item);
        }
        self.inner.set_link_active(l, active, m).await
    }
    async fn guard_link(
        &self,
        l: &PaymentLinkId,
        sessions: u64,
        activate: bool,
    ) -> Result<stockbridge_app::ports::GuardOutcome, stockbridge_app::ports::PaymentsError> {
        self.inner.guard_link(l, sessions, activate).await
    }
    async fn create_payment_intent(
        &self,
        r: &stockbridge_app::ports::NewPaymentIntent,
    ) -> Result<stockbridge_app::ports::CreatedPaymentIntent, stockbridge_app::ports::PaymentsError>
    {
        self.inner.create_payment_intent(r).await
    }
    async fn capture_payment_intent(
        &self,
        pi: &stockbridge_domain::PaymentIntentId,
        key: &str,
    ) -> Result<(), stockbridge_app::ports::PaymentsError> {
        self.inner.capture_payment_intent(pi, key).await
    }
    async fn cancel_payment_intent(
        &self,
        pi: &stockbridge_domain::PaymentIntentId,
        key: &str,
    ) -> Result<(), stockbridge_app::ports::PaymentsError> {
        self.inner.cancel_payment_intent(pi, key).await
    }
    async fn payment_intent_status(
        &self,
        pi: &stockbridge_domain::PaymentIntentId,
    ) -> Result<stockbridge_app::ports::IntentStatus, stockbridge_app::ports::PaymentsError> {
        self.inner.payment_intent_status(pi).await
    }

    async fn order_of_payment(
        &self,
        pi: Option<&stockbridge_domain::PaymentIntentId>,
        charge: &stockbridge_domain::ChargeId,
    ) -> Result<Option<stockbridge_domain::OrderId>, stockbridge_app::ports::PaymentsError> {
        self.inner.order_of_payment(pi, charge).await
    }
}

#[tokio::test]
async fn a_sell_out_during_a_restock_switch_on_leaves_the_links_off() {
    let w = world(&[("prod_a", 4, 0)]);
    switched_off_by_stockbridge(&w);
    let (s, p) = ids();
    let racy = SellOutDuringSwitchOn {
        inner: w.payments.clone(),
        store: w.store.clone(),
    };
    let restock = Effects {
        reactivate: vec![Reactivation {
            store_id: s,
            product_id: p,
            links: vec![link("plink_prod_a")],
        }],
        ..Effects::default()
    };
    run_effects(
        (&w.store, &w.publisher, &racy),
        &stockbridge_app::ports::NoMerchantEvents,
        &restock,
        Timestamp(0),
    )
    .await
    .unwrap();
    assert!(
        !w.payments.link_active(&link("plink_prod_a")),
        "switched back off: the product sold out meanwhile"
    );
    assert_eq!(
        recorded(&w),
        vec![link("plink_prod_a")],
        "still stockbridge's"
    );
}

#[tokio::test]
async fn a_session_that_names_no_store_takes_stock_from_the_store_its_link_was_attached_to() {
    // A link backfilled into store_chicago carries no metadata.store_id, so neither do its
    // sessions: without the link's record they would draw on DEFAULT_STORE_ID.
    use stockbridge_app::ports::InventoryStore;
    let w = world(&[("prod_a", 3, 0)]);
    let (s, p) = ids();
    w.store
        .update_item_details(&s, &p, "prod_a", &[link("plink_backfilled")])
        .await
        .unwrap();
    session(&w, "cs_nostore", &[("prod_a", 1)]);
    let mut ev = completed("evt_nostore", "cs_nostore");
    ev["detail"]["data"]["object"]["metadata"] = serde_json::json!({});
    ev["detail"]["data"]["object"]["payment_link"] = "plink_backfilled".into();
    w.app.handle(&ev).await.unwrap();
    assert_eq!(available(&w, "prod_a"), 2);
}

#[tokio::test]
async fn a_link_a_person_switched_off_after_a_restock_stays_off_at_the_next_one() {
    let w = world(&[("prod_a", 1, 0)]);
    let (s, p) = ids();
    session(&w, "cs_1", &[("prod_a", 1)]);
    w.app.handle(&sale("evt_1", "cs_1")).await.unwrap();
    w.app
        .change_stock(&s, &p, StockChange::Set(1), None, "test")
        .await
        .unwrap();
    assert!(w.payments.link_active(&link("plink_prod_a")));
    // A person switches it off in the Dashboard (Stripe keeps whatever message it had).
    w.payments
        .links
        .lock()
        .unwrap()
        .insert(link("plink_prod_a"), false);
    session(&w, "cs_2", &[("prod_a", 1)]);
    w.app.handle(&sale("evt_2", "cs_2")).await.unwrap();
    assert!(
        recorded(&w).is_empty(),
        "not stockbridge's switch: {:?}",
        recorded(&w)
    );
    w.app
        .change_stock(&s, &p, StockChange::Set(3), None, "test")
        .await
        .unwrap();
    assert!(!w.payments.link_active(&link("plink_prod_a")));
}

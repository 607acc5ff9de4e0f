//! Handler tests: real EventBridge/Stripe JSON, in-memory ports, assertions on state and calls.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use stockbridge_app::decode::EventFilter;
use stockbridge_app::memory::{MemoryPayments, MemoryPublisher, MemoryStore, TickingClock};
use stockbridge_app::orders::{HandleError, Handled, InventoryConfig, Services};
use stockbridge_app::ports::SessionLine;
use stockbridge_domain::{
    CatalogItem, OrderId, OrderStatus, Outcome, PaymentLinkId, ProductId, StoreId, Timestamp,
};

type App = Services<MemoryStore, MemoryPublisher, MemoryPayments, TickingClock>;

struct World {
    app: App,
    store: MemoryStore,
    publisher: MemoryPublisher,
    payments: MemoryPayments,
}

const STORE: &str = "store_chicago";

fn world(stock: &[(&str, u64)]) -> World {
    let store = MemoryStore::default();
    for (p, n) in stock {
        store.put_item(CatalogItem {
            store_id: StoreId::parse(STORE).unwrap(),
            product_id: ProductId::parse(*p).unwrap(),
            name: p.to_string(),
            available: *n,
            held: 0,
            version: 1,
            payment_links: vec![PaymentLinkId::parse(format!("plink_{p}")).unwrap()],
            deactivated_links: vec![],
            updated_at: Timestamp(0),
            managed_since: stockbridge_domain::Timestamp(0),
            unrecorded_take: None,
            spread: None,
            low_stock: None,
        });
    }
    let publisher = MemoryPublisher::default();
    let payments = MemoryPayments::default();
    let config = InventoryConfig {
        filter: EventFilter {
            source_prefix: "aws.partner/stripe.com/".into(),
            livemode: false,
        },
        default_store: StoreId::parse("default").unwrap(),
        max_attempts: 1000,
    };
    let app = Services::new(
        store.clone(),
        publisher.clone(),
        payments.clone(),
        TickingClock::default(),
        config,
    );
    World {
        app,
        store,
        publisher,
        payments,
    }
}

fn envelope(event_type: &str, event_id: &str, session: &str, payment_status: &str) -> Value {
    let mut v: Value = serde_json::from_str(include_str!(
        "../../../../testdata/stripe/eventbridge-envelope.json"
    ))
    .unwrap();
    v["detail-type"] = json!(event_type);
    v["detail"]["type"] = json!(event_type);
    v["detail"]["id"] = json!(event_id);
    v["detail"]["data"]["object"]["id"] = json!(session);
    v["detail"]["data"]["object"]["payment_status"] = json!(payment_status);
    v["detail"]["data"]["object"]["payment_intent"] = json!(format!("pi_{session}"));
    v
}

/// Delivers one event and expects it handled.
async fn deliver(
    w: &World,
    event_type: &str,
    event_id: &str,
    session: &str,
    payment_status: &str,
) -> Handled {
    w.app
        .handle(&envelope(event_type, event_id, session, payment_status))
        .await
        .unwrap()
}

fn session(w: &World, id: &str, lines: &[(&str, u64)]) {
    w.payments.add_session(
        &OrderId::parse(id).unwrap(),
        lines
            .iter()
            .map(|(p, q)| SessionLine {
                product_id: ProductId::parse(*p).unwrap(),
                quantity: *q,
                amount_total: None,
            })
            .collect(),
    );
}

fn available(w: &World, p: &str) -> u64 {
    w.store.snapshot().items[&(StoreId::parse(STORE).unwrap(), ProductId::parse(p).unwrap())]
        .available
}

fn status(w: &World, order: &str) -> OrderStatus {
    w.store.snapshot().orders[&OrderId::parse(order).unwrap()].status
}

#[tokio::test]
async fn a_paid_order_takes_stock_writes_the_ledger_and_publishes() {
    let w = world(&[("prod_a", 5)]);
    session(&w, "cs_1", &[("prod_a", 2)]);
    let h = w
        .app
        .handle(&envelope(
            "checkout.session.completed",
            "evt_1",
            "cs_1",
            "paid",
        ))
        .await
        .unwrap();
    assert_eq!(
        h,
        Handled::Applied {
            order_id: OrderId::parse("cs_1").unwrap(),
            outcome: Outcome::Fulfilled
        }
    );
    assert_eq!(available(&w, "prod_a"), 3);
    let s = w.store.snapshot();
    assert_eq!(s.ledger.len(), 1);
    assert_eq!(s.ledger[0].delta, -2);
    assert_eq!(
        s.ledger[0].cause.stripe_event_id.as_ref().unwrap().as_str(),
        "evt_1"
    );
    let published = w.publisher.published.lock().unwrap().clone();
    assert_eq!(published.len(), 1);
    assert_eq!((published[0].available, published[0].version), (3, 2));
    assert_eq!(
        *w.payments.calls.lock().unwrap(),
        vec!["line_items"],
        "one Stripe call per paid order"
    );
}

#[tokio::test]
async fn the_same_event_three_times_changes_stock_once() {
    let w = world(&[("prod_a", 5)]);
    session(&w, "cs_1", &[("prod_a", 2)]);
    let e = envelope("checkout.session.completed", "evt_1", "cs_1", "paid");
    for _ in 0..3 {
        w.app.handle(&e).await.unwrap();
    }
    assert_eq!(available(&w, "prod_a"), 3);
    assert_eq!(w.store.snapshot().ledger.len(), 1);
    assert_eq!(w.store.commits.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_redelivery_with_another_envelope_id_is_still_the_same_order() {
    let w = world(&[("prod_a", 5)]);
    session(&w, "cs_1", &[("prod_a", 2)]);
    let mut e = envelope("checkout.session.completed", "evt_1", "cs_1", "paid");
    w.app.handle(&e).await.unwrap();
    e["id"] = json!("another-envelope-id");
    e["detail"]["id"] = json!("evt_other_delivery");
    w.app.handle(&e).await.unwrap();
    assert_eq!(available(&w, "prod_a"), 3);
}

#[tokio::test]
async fn concurrent_orders_never_oversell_and_refund_each_loser_once() {
    let w = Arc::new(world(&[("prod_a", 50)]));
    for i in 0..200 {
        session(&w, &format!("cs_{i}"), &[("prod_a", 1)]);
    }
    let mut tasks = Vec::new();
    for i in 0..200 {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            w.app
                .handle(&envelope(
                    "checkout.session.completed",
                    &format!("evt_{i}"),
                    &format!("cs_{i}"),
                    "paid",
                ))
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let s = w.store.snapshot();
    assert_eq!(available(&w, "prod_a"), 0);
    assert_eq!(
        s.orders
            .values()
            .filter(|o| o.status == OrderStatus::Fulfilled)
            .count(),
        50
    );
    let oversold: Vec<_> = s
        .orders
        .values()
        .filter(|o| o.status == OrderStatus::Oversold)
        .collect();
    assert_eq!(oversold.len(), 150);
    assert!(oversold.iter().all(|o| o.refund_id.is_some()));
    assert_eq!(w.payments.refunds.lock().unwrap().len(), 150);
    let refund_calls = w
        .payments
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| **c == "refund")
        .count();
    assert_eq!(
        refund_calls, 150,
        "one refund call per oversold order, no retries needed"
    );
    assert!(
        !w.payments
            .link_active(&PaymentLinkId::parse("plink_prod_a").unwrap())
    );
    let latest = w.publisher.latest();
    assert_eq!(latest.values().next().unwrap().available, 0);
}

#[tokio::test]
async fn a_two_line_order_with_one_line_short_takes_nothing_and_refunds_once() {
    let w = world(&[("prod_a", 5), ("prod_b", 1)]);
    session(&w, "cs_1", &[("prod_a", 1), ("prod_b", 2)]);
    let e = envelope("checkout.session.completed", "evt_1", "cs_1", "paid");
    w.app.handle(&e).await.unwrap();
    w.app.handle(&e).await.unwrap();
    assert_eq!((available(&w, "prod_a"), available(&w, "prod_b")), (5, 1));
    assert_eq!(status(&w, "cs_1"), OrderStatus::Oversold);
    assert_eq!(w.payments.refunds.lock().unwrap().len(), 1);
    assert_eq!(
        w.payments
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| **c == "refund")
            .count(),
        1,
        "refund recorded: not re-sent"
    );
}

#[tokio::test]
async fn an_async_success_before_completed_applies_the_order_once() {
    let w = world(&[("prod_a", 5)]);
    session(&w, "cs_1", &[("prod_a", 2)]);
    deliver(
        &w,
        "checkout.session.async_payment_succeeded",
        "evt_2",
        "cs_1",
        "paid",
    )
    .await;
    deliver(&w, "checkout.session.completed", "evt_1", "cs_1", "unpaid").await;
    assert_eq!(available(&w, "prod_a"), 3);
    assert_eq!(status(&w, "cs_1"), OrderStatus::Fulfilled);
}

#[tokio::test]
async fn a_delayed_payment_holds_stock_then_confirms_or_releases() {
    let w = world(&[("prod_a", 5)]);
    session(&w, "cs_ok", &[("prod_a", 2)]);
    session(&w, "cs_ko", &[("prod_a", 3)]);
    deliver(&w, "checkout.session.completed", "evt_1", "cs_ok", "unpaid").await;
    deliver(&w, "checkout.session.completed", "evt_2", "cs_ko", "unpaid").await;
    assert_eq!(available(&w, "prod_a"), 0);
    assert_eq!(status(&w, "cs_ok"), OrderStatus::Pending);
    assert!(
        !w.payments
            .link_active(&PaymentLinkId::parse("plink_prod_a").unwrap())
    );
    deliver(
        &w,
        "checkout.session.async_payment_succeeded",
        "evt_3",
        "cs_ok",
        "paid",
    )
    .await;
    deliver(
        &w,
        "checkout.session.async_payment_failed",
        "evt_4",
        "cs_ko",
        "unpaid",
    )
    .await;
    deliver(
        &w,
        "checkout.session.async_payment_failed",
        "evt_4",
        "cs_ko",
        "unpaid",
    )
    .await;
    assert_eq!(status(&w, "cs_ok"), OrderStatus::Fulfilled);
    assert_eq!(status(&w, "cs_ko"), OrderStatus::Released);
    assert_eq!(available(&w, "prod_a"), 3, "the failed hold came back once");
    assert!(
        w.payments
            .link_active(&PaymentLinkId::parse("plink_prod_a").unwrap()),
        "restocked: link back on"
    );
}

#[tokio::test]
async fn a_failure_before_completed_holds_nothing_later() {
    let w = world(&[("prod_a", 5)]);
    session(&w, "cs_1", &[("prod_a", 2)]);
    deliver(
        &w,
        "checkout.session.async_payment_failed",
        "evt_2",
        "cs_1",
        "unpaid",
    )
    .await;
    deliver(&w, "checkout.session.completed", "evt_1", "cs_1", "unpaid").await;
    assert_eq!(available(&w, "prod_a"), 5);
    assert_eq!(status(&w, "cs_1"), OrderStatus::Failed);
}

#[tokio::test]
async fn a_publish_failure_after_commit_fails_the_invocation_and_the_redelivery_publishes() {
    let w = world(&[("prod_a", 5)]);
    session(&w, "cs_1", &[("prod_a", 1)]);
    w.publisher.fail_next.store(1, Ordering::SeqCst);
    let e = envelope("checkout.session.completed", "evt_1", "cs_1", "paid");
    let err = w.app.handle(&e).await.unwrap_err();
    assert!(
        matches!(err, HandleError::Effect { .. }) && err.is_retryable(),
        "{err}"
    );
    assert!(w.publisher.published.lock().unwrap().is_empty());
    w.app.handle(&e).await.unwrap();
    assert_eq!(available(&w, "prod_a"), 4, "stock changed once");
    assert_eq!(w.publisher.published.lock().unwrap()[0].available, 4);
}

#[tokio::test]
async fn an_order_for_an_unknown_product_is_recorded_unmatched_and_not_refunded() {
    let w = world(&[("prod_a", 5)]);
    session(&w, "cs_1", &[("prod_zzz", 1)]);
    deliver(&w, "checkout.session.completed", "evt_1", "cs_1", "paid").await;
    assert_eq!(status(&w, "cs_1"), OrderStatus::Unmatched);
    assert!(w.payments.refunds.lock().unwrap().is_empty());
}

#[tokio::test]
async fn bad_input_is_refused_or_named_without_effect() {
    let w = world(&[("prod_a", 5)]);
    session(&w, "cs_1", &[("prod_a", 1)]);
    let mut foreign = envelope("checkout.session.completed", "evt_1", "cs_1", "paid");
    foreign["source"] = json!("aws.partner/evil.example.com/x");
    assert_eq!(w.app.handle(&foreign).await.unwrap(), Handled::Refused);
    let mut live = envelope("checkout.session.completed", "evt_1", "cs_1", "paid");
    live["detail"]["livemode"] = json!(true);
    assert_eq!(w.app.handle(&live).await.unwrap(), Handled::Refused);
    let mut broken = envelope("checkout.session.completed", "evt_1", "cs_1", "paid");
    broken["detail"]["data"]["object"]["payment_status"] = json!(42);
    let err = w.app.handle(&broken).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("detail.data.object.payment_status"),
        "{err}"
    );
    assert!(!err.is_retryable());
    let mut zero = envelope("checkout.session.completed", "evt_1", "cs_1", "paid");
    zero["detail"]["data"]["object"]["id"] = json!("cs_zero");
    session(&w, "cs_zero", &[("prod_a", 0)]);
    let err = w.app.handle(&zero).await.unwrap_err();
    assert!(err.to_string().contains("quantity"), "{err}");
    assert_eq!(available(&w, "prod_a"), 5);
    assert!(w.store.snapshot().orders.is_empty());
}

#[tokio::test]
async fn a_restock_from_zero_reactivates_links_and_publishes() {
    let w = world(&[("prod_a", 1)]);
    session(&w, "cs_1", &[("prod_a", 1)]);
    deliver(&w, "checkout.session.completed", "evt_1", "cs_1", "paid").await;
    let link = PaymentLinkId::parse("plink_prod_a").unwrap();
    assert!(!w.payments.link_active(&link));
    let (s, p) = (
        StoreId::parse(STORE).unwrap(),
        ProductId::parse("prod_a").unwrap(),
    );
    let level = w
        .app
        .change_stock(
            &s,
            &p,
            stockbridge_domain::StockChange::Set(10),
            Some(2),
            "test",
        )
        .await
        .unwrap();
    assert_eq!((level.available, level.version), (10, 3));
    assert!(w.payments.link_active(&link));
    let stale = w
        .app
        .change_stock(
            &s,
            &p,
            stockbridge_domain::StockChange::Adjust(1),
            Some(2),
            "test",
        )
        .await;
    assert!(
        matches!(
            stale,
            Err(stockbridge_app::stock_admin::StockError::VersionMismatch {
                expected: 2,
                found: 3,
                ..
            })
        ),
        "compare-and-set refuses a stale version: {stale:?}"
    );
    assert_eq!(available(&w, "prod_a"), 10);
}

#[tokio::test]
async fn a_redelivery_needs_no_stripe_when_the_order_is_already_applied() {
    let w = world(&[("prod_a", 5)]);
    session(&w, "cs_1", &[("prod_a", 2)]);
    let e = envelope("checkout.session.completed", "evt_1", "cs_1", "paid");
    w.app.handle(&e).await.unwrap();
    // Stripe no longer answers for the session (outage): the redelivery still re-runs effects.
    w.payments.sessions.lock().unwrap().clear();
    let h = w.app.handle(&e).await.unwrap();
    assert!(
        matches!(
            h,
            Handled::Applied {
                outcome: Outcome::AlreadyApplied(OrderStatus::Fulfilled),
                ..
            }
        ),
        "{h:?}"
    );
    assert_eq!(available(&w, "prod_a"), 3);
    assert_eq!(
        w.publisher.published.lock().unwrap().len(),
        2,
        "published again"
    );
    // A new order still needs its line items: the Stripe failure is the error.
    let err = w
        .app
        .handle(&envelope(
            "checkout.session.completed",
            "evt_2",
            "cs_2",
            "paid",
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, HandleError::Payments { .. }), "{err}");
}

#[tokio::test]
async fn a_failed_reactivation_stays_recorded_and_is_retried() {
    let w = world(&[("prod_a", 1)]);
    session(&w, "cs_1", &[("prod_a", 1)]);
    let sold = envelope("checkout.session.completed", "evt_1", "cs_1", "paid");
    w.app.handle(&sold).await.unwrap();
    let link = PaymentLinkId::parse("plink_prod_a").unwrap();
    let (s, p) = (
        StoreId::parse(STORE).unwrap(),
        ProductId::parse("prod_a").unwrap(),
    );
    w.payments.fail_links.store(1, Ordering::SeqCst);
    let err = w
        .app
        .change_stock(
            &s,
            &p,
            stockbridge_domain::StockChange::Set(5),
            None,
            "test",
        )
        .await;
    assert!(
        matches!(
            err,
            Err(stockbridge_app::stock_admin::StockError::Effect(_))
        ),
        "{err:?}"
    );
    assert!(!w.payments.link_active(&link));
    let item = w.store.snapshot().items[&(s.clone(), p.clone())].clone();
    assert_eq!(item.available, 5);
    assert!(
        item.deactivated_links.contains(&link),
        "still recorded as switched off: {:?}",
        item.deactivated_links
    );
    // Any later run for the product retries it: here the redelivery of the order that sold out.
    w.app.handle(&sold).await.unwrap();
    assert!(w.payments.link_active(&link));
    assert!(
        w.store.snapshot().items[&(s, p)]
            .deactivated_links
            .is_empty(),
        "forgotten once back on"
    );
}

#[tokio::test]
async fn an_import_creates_items_and_never_puts_back_sold_units() {
    use stockbridge_app::stock_admin::{ImportItem, Imported};
    let w = world(&[]);
    let row = ImportItem {
        store_id: StoreId::parse(STORE).unwrap(),
        product_id: ProductId::parse("prod_new").unwrap(),
        name: "New".into(),
        stock: 0,
        payment_links: Some(vec![PaymentLinkId::parse("plink_new").unwrap()]),
    };
    assert_eq!(
        w.app.import_item(&row, false, "test").await.unwrap(),
        Imported::Created
    );
    assert!(
        !w.payments
            .link_active(&PaymentLinkId::parse("plink_new").unwrap()),
        "created at 0: link off"
    );
    let restock = ImportItem {
        stock: 4,
        ..row.clone()
    };
    assert_eq!(
        w.app.import_item(&restock, false, "test").await.unwrap(),
        Imported::StockKept {
            current: 0,
            file: 4
        }
    );
    assert_eq!(available(&w, "prod_new"), 0);
    assert_eq!(
        w.app.import_item(&restock, true, "test").await.unwrap(),
        Imported::Updated
    );
    assert_eq!(available(&w, "prod_new"), 4);
    assert!(
        w.payments
            .link_active(&PaymentLinkId::parse("plink_new").unwrap()),
        "restocked: link back on"
    );
}

mod properties;

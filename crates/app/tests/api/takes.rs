//! The hot path's take through the handler (`stockbridge_domain::take`): a simple order is one
//! conditional take and one record, never a transaction on the item; a crash between the two
//! loses nothing and counts nothing twice; everything else keeps its transaction.

use std::sync::atomic::Ordering;

use crate::support::{PAID, STORE, World, available, completed, order, session, world};
use stockbridge_app::ports::InventoryStore;
use stockbridge_domain::take::StockTake;
use stockbridge_domain::{OrderId, OrderStatus, ProductId, StoreId, Timestamp};

fn item_version(w: &World, p: &str) -> u64 {
    w.store.snapshot().items[&(StoreId::parse(STORE).unwrap(), ProductId::parse(p).unwrap())]
        .version
}

#[tokio::test]
async fn a_simple_order_is_one_take_and_one_record_with_the_version_it_made() {
    let w = world(&[("prod_a", 10, PAID - 60)]);
    session(&w, "cs_1", &[("prod_a", 3)]);
    w.app.handle(&completed("evt_1", "cs_1")).await.unwrap();
    assert_eq!(available(&w, "prod_a"), 7);
    assert_eq!(w.store.takes.load(Ordering::Relaxed), 1, "one take");
    assert_eq!(w.store.commits.load(Ordering::Relaxed), 1, "one record");
    let state = w.store.snapshot();
    assert!(state.takes.is_empty(), "the mark goes once recorded");
    let [entry] = state.ledger.as_slice() else {
        panic!("one ledger entry")
    };
    assert_eq!((entry.version, entry.delta, entry.level), (2, -3, 7));
    assert_eq!(item_version(&w, "prod_a"), 2);
    let published = w.publisher.published.lock().unwrap().clone();
    assert_eq!(
        published
            .iter()
            .map(|l| (l.available, l.version))
            .collect::<Vec<_>>(),
        vec![(7, 2)]
    );
    assert_eq!(order(&w, "cs_1").unwrap().status, OrderStatus::Fulfilled);
}

#[tokio::test]
async fn a_crash_between_the_take_and_the_record_is_finished_by_the_redelivery_without_taking_again()
 {
    let w = world(&[("prod_a", 10, PAID - 60)]);
    session(&w, "cs_1", &[("prod_a", 2)]);
    w.store.fail_records.store(1, Ordering::SeqCst);
    let first = w.app.handle(&completed("evt_1", "cs_1")).await;
    assert!(
        first.is_err(),
        "the lost record fails the invocation: {first:?}"
    );
    assert_eq!(available(&w, "prod_a"), 8, "the take happened");
    assert!(order(&w, "cs_1").is_none(), "no record yet");
    assert!(w.publisher.published.lock().unwrap().is_empty());
    // Stripe (or EventBridge) delivers again; a third time changes nothing either.
    for _ in 0..2 {
        w.app.handle(&completed("evt_1", "cs_1")).await.unwrap();
    }
    assert_eq!(available(&w, "prod_a"), 8, "taken once");
    assert_eq!(w.store.takes.load(Ordering::Relaxed), 1);
    assert_eq!(order(&w, "cs_1").unwrap().status, OrderStatus::Fulfilled);
    let state = w.store.snapshot();
    assert!(state.takes.is_empty());
    let [entry] = state.ledger.as_slice() else {
        panic!("one ledger entry")
    };
    assert_eq!((entry.version, entry.delta, entry.level), (2, -2, 8));
    assert_eq!(
        w.publisher
            .published
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .available,
        8
    );
}

#[tokio::test]
async fn a_mark_left_on_the_item_survives_a_sell_out_and_the_redelivery_is_not_refunded() {
    // GIVEN a take whose record was lost, then the rest of the stock sold by other orders
    let w = world(&[("prod_a", 4, PAID - 60)]);
    session(&w, "cs_1", &[("prod_a", 2)]);
    session(&w, "cs_2", &[("prod_a", 2)]);
    w.store.fail_records.store(1, Ordering::SeqCst);
    assert!(w.app.handle(&completed("evt_1", "cs_1")).await.is_err());
    w.app.handle(&completed("evt_2", "cs_2")).await.unwrap();
    assert_eq!(available(&w, "prod_a"), 0);
    // WHEN the first order is delivered again, at 0
    w.app.handle(&completed("evt_1", "cs_1")).await.unwrap();
    // THEN it is recorded as fulfilled, not oversold, and nobody is refunded
    assert_eq!(order(&w, "cs_1").unwrap().status, OrderStatus::Fulfilled);
    assert_eq!(order(&w, "cs_2").unwrap().status, OrderStatus::Fulfilled);
    assert!(w.payments.refunds.lock().unwrap().is_empty());
    assert_eq!(available(&w, "prod_a"), 0);
}

#[tokio::test]
async fn the_last_units_and_multi_product_orders_keep_their_transaction() {
    let w = world(&[("prod_a", 2, PAID - 60), ("prod_b", 5, PAID - 60)]);
    session(&w, "cs_last", &[("prod_a", 2)]);
    session(&w, "cs_two", &[("prod_b", 1), ("prod_a", 1)]);
    w.app.handle(&completed("evt_1", "cs_last")).await.unwrap();
    w.app.handle(&completed("evt_2", "cs_two")).await.unwrap();
    assert_eq!(w.store.takes.load(Ordering::Relaxed), 0);
    assert_eq!(order(&w, "cs_last").unwrap().status, OrderStatus::Fulfilled);
    assert_eq!(order(&w, "cs_two").unwrap().status, OrderStatus::Oversold);
    assert!(
        !w.payments.links.lock().unwrap().is_empty(),
        "the sell-out switched links off"
    );
}

fn ledger_moves(w: &World) -> Vec<(u64, i64, u64)> {
    w.store
        .snapshot()
        .ledger
        .iter()
        .map(|e| (e.version, e.delta, e.level))
        .collect()
}

#[tokio::test]
async fn a_duplicate_take_left_by_a_stopped_delivery_is_given_back_by_the_next_one() {
    let w = world(&[("prod_a", 10, PAID - 60)]);
    session(&w, "cs_1", &[("prod_a", 2)]);
    w.app.handle(&completed("evt_1", "cs_1")).await.unwrap();
    // Another delivery of cs_1 read before that record, took after its mark went, and stopped.
    let dup = StockTake {
        store_id: StoreId::parse(STORE).unwrap(),
        product_id: ProductId::parse("prod_a").unwrap(),
        order_id: OrderId::parse("cs_1").unwrap(),
        quantity: 2,
        managed_since: Timestamp((PAID - 60) * 1000),
        at: Timestamp(PAID * 1000),
        shard: None,
    };
    w.store
        .take_stock(&dup)
        .await
        .unwrap()
        .expect("taken again");
    assert_eq!(available(&w, "prod_a"), 6);

    w.app.handle(&completed("evt_1", "cs_1")).await.unwrap();

    assert_eq!(available(&w, "prod_a"), 8, "given back");
    assert_eq!(ledger_moves(&w), vec![(2, -2, 8), (3, -2, 6), (4, 2, 8)]);
    let last = w
        .publisher
        .published
        .lock()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    assert_eq!(
        (last.available, last.version),
        (8, 4),
        "the level published last is the newest"
    );
    assert!(w.store.snapshot().takes.is_empty());
    w.app.handle(&completed("evt_1", "cs_1")).await.unwrap();
    assert_eq!(available(&w, "prod_a"), 8, "once");
}

#[tokio::test]
async fn a_take_whose_order_was_recorded_meanwhile_is_given_back_at_once() {
    let World {
        app,
        store,
        publisher,
        payments,
    } = world(&[("prod_a", 10, PAID - 60)]);
    let w_store = store.clone();
    // Between this delivery's read and its take, another delivery of the same session
    // recorded the order (a `completed` with a delayed payment, holding its units in a
    // transaction of its own: here only its record, to see this take's units alone).
    let held = stockbridge_domain::OrderRecord {
        order_id: OrderId::parse("cs_1").unwrap(),
        store_id: StoreId::parse(STORE).unwrap(),
        status: OrderStatus::Pending,
        payment: stockbridge_domain::PaymentState::Awaiting,
        lines: vec![stockbridge_domain::OrderLine {
            product_id: ProductId::parse("prod_a").unwrap(),
            quantity: stockbridge_domain::Quantity::new(2).unwrap(),
        }],
        unmatched: vec![],
        shortfalls: vec![],
        payment_intent: None,
        payment_link: None,
        refund_id: None,
        created_by: stockbridge_domain::StripeEventId::parse("evt_0").unwrap(),
        last_event: stockbridge_domain::StripeEventId::parse("evt_0").unwrap(),
        created_at: Timestamp(PAID * 1000),
        updated_at: Timestamp(PAID * 1000),
        hold: None,
        predating: vec![],
        refund_amount: None,
        after_sale: None,
    };
    let app = app.with_after_take_hook(std::sync::Arc::new(move || {
        w_store.put_order(held.clone());
    }));
    let w = World {
        app,
        store,
        publisher,
        payments,
    };
    session(&w, "cs_1", &[("prod_a", 2)]);

    let handled = w.app.handle(&completed("evt_1", "cs_1")).await.unwrap();

    assert!(
        format!("{handled:?}").contains("AlreadyApplied(Pending)"),
        "{handled:?}"
    );
    assert_eq!(w.store.takes.load(Ordering::Relaxed), 1);
    assert_eq!(
        available(&w, "prod_a"),
        10,
        "the duplicate take is given back"
    );
    assert_eq!(ledger_moves(&w), vec![(2, -2, 8), (3, 2, 10)]);
    assert!(w.store.snapshot().takes.is_empty());
}

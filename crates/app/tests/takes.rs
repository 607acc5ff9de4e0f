//! The hot path's take through the handler (`stockbridge_domain::take`): a simple order is one
//! conditional take and one record, never a transaction on the item; a crash between the two
//! loses nothing and counts nothing twice; everything else keeps its transaction.

mod support;

use std::sync::atomic::Ordering;

use stockbridge_domain::{OrderStatus, ProductId, StoreId};
use support::{PAID, STORE, World, available, completed, order, session, world};

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
        published.iter().map(|l| (l.available, l.version)).collect::<Vec<_>>(),
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
    assert!(first.is_err(), "the lost record fails the invocation: {first:?}");
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
    assert_eq!(w.publisher.published.lock().unwrap().last().unwrap().available, 8);
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
    assert!(!w.payments.links.lock().unwrap().is_empty(), "the sell-out switched links off");
}

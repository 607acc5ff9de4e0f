//! Sharded stock through the handler (`stockbridge_domain::shard`, `stockbridge_app::shards`):
//! a spread product's simple orders take from their home shards and never write the item;
//! refills, the collect before the last units, crashes between the steps and every other kind
//! of write keep every unit counted once.

use std::sync::atomic::Ordering;

use crate::support::{PAID, STORE, World, completed, order, session, world};
use stockbridge_app::ports::{InventoryStore, ShardStore, StoreError};
use stockbridge_app::shards;
use stockbridge_domain::shard::home;
use stockbridge_domain::{CauseKind, OrderId, OrderStatus, ProductId, StoreId, Timestamp};

fn ids(p: &str) -> (StoreId, ProductId) {
    (StoreId::parse(STORE).unwrap(), ProductId::parse(p).unwrap())
}

async fn spread(w: &World, p: &str, k: u16) {
    let (s, p) = ids(p);
    shards::spread(&w.store, &s, &p, k, Timestamp(PAID * 1000))
        .await
        .unwrap();
}

/// The product's level as a reader sees it (item and shards), and its shards' units.
async fn level(w: &World, p: &str) -> (u64, Vec<u64>) {
    let (s, p) = ids(p);
    let item = w.store.item(&s, &p).await.unwrap().unwrap();
    let k = item.spread.map_or(0, |x| x.shards);
    let shards = w.store.read_shards(&s, &p, k).await.unwrap();
    (
        item.level().available,
        shards.iter().map(|s| s.available).collect(),
    )
}

fn item_version(w: &World, p: &str) -> u64 {
    w.store.snapshot().items[&ids(p)].version
}

/// Order ids whose home shard among `k` is `shard`.
fn orders_at(shard: u16, k: u16, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("cs_shard_{i}"))
        .filter(|o| home(&OrderId::parse(o.as_str()).unwrap(), k) == shard)
        .take(n)
        .collect()
}

#[tokio::test]
async fn spreading_moves_the_units_into_the_shards_and_the_level_stays() {
    let w = world(&[("prod_a", 10, PAID - 60)]);
    spread(&w, "prod_a", 4).await;
    assert_eq!(level(&w, "prod_a").await, (10, vec![3, 3, 2, 2]));
    let state = w.store.snapshot();
    assert_eq!(state.items[&ids("prod_a")].available, 0);
    assert!(state.ledger.iter().all(|e| e.cause.kind == CauseKind::Move));
    assert_eq!(
        state.ledger.iter().map(|e| e.delta).sum::<i64>(),
        0,
        "a move adds nothing"
    );
    // Spreading again over the same number changes nothing; over 1 collects.
    spread(&w, "prod_a", 4).await;
    assert_eq!(w.store.snapshot().ledger.len(), 5);
    spread(&w, "prod_a", 1).await;
    let (s, p) = ids("prod_a");
    assert!(
        shards::collect(&w.store, &s, &p, Timestamp(0))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_simple_order_takes_from_its_home_shard_and_never_writes_the_item() {
    let w = world(&[("prod_a", 20, PAID - 60)]);
    spread(&w, "prod_a", 4).await;
    let before = item_version(&w, "prod_a");
    let o = &orders_at(2, 4, 1)[0];
    session(&w, o, &[("prod_a", 3)]);
    w.app.handle(&completed("evt_1", o)).await.unwrap();
    assert_eq!(order(&w, o).unwrap().status, OrderStatus::Fulfilled);
    assert_eq!(
        item_version(&w, "prod_a"),
        before,
        "the item is not written"
    );
    assert_eq!(level(&w, "prod_a").await, (17, vec![5, 5, 2, 5]));
    let state = w.store.snapshot();
    let entry = state.ledger.last().unwrap();
    assert_eq!((entry.shard, entry.delta, entry.level), (Some(2), -3, 2));
    assert!(state.shard_takes.is_empty(), "the mark goes once recorded");
    assert!(
        w.publisher.published.lock().unwrap().is_empty(),
        "a spread product's level is the broadcaster's"
    );
}

#[tokio::test]
async fn a_dry_home_shard_is_refilled_from_the_fullest_one() {
    let w = world(&[("prod_a", 12, PAID - 60)]);
    spread(&w, "prod_a", 2).await; // 6 + 6
    let orders = orders_at(0, 2, 3);
    for (n, o) in orders.iter().enumerate() {
        session(&w, o, &[("prod_a", 2)]);
        w.app
            .handle(&completed(&format!("evt_{n}"), o))
            .await
            .unwrap();
    }
    for o in &orders {
        assert_eq!(order(&w, o).unwrap().status, OrderStatus::Fulfilled);
    }
    let (total, units) = level(&w, "prod_a").await;
    assert_eq!(total, 6);
    assert!(
        units.iter().all(|u| *u >= 1),
        "a donor keeps a unit: {units:?}"
    );
    assert!(w.store.snapshot().items[&ids("prod_a")].spread.is_some());
}

#[tokio::test]
async fn the_last_units_sell_through_the_item_and_the_sell_out_switches_links_off() {
    let w = world(&[("prod_a", 3, PAID - 60)]);
    spread(&w, "prod_a", 2).await; // 2 + 1
    for n in 0..4 {
        let o = format!("cs_last_{n}");
        session(&w, &o, &[("prod_a", 1)]);
        w.app
            .handle(&completed(&format!("evt_{n}"), &o))
            .await
            .unwrap();
    }
    let statuses: Vec<_> = (0..4)
        .map(|n| order(&w, &format!("cs_last_{n}")).unwrap().status)
        .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == OrderStatus::Fulfilled)
            .count(),
        3
    );
    assert_eq!(statuses[3], OrderStatus::Oversold);
    let state = w.store.snapshot();
    let item = &state.items[&ids("prod_a")];
    assert_eq!((item.available, item.spread), (0, None), "collected");
    let links = w.payments.links.lock().unwrap().clone();
    assert!(
        !links.is_empty() && links.values().all(|on| !on),
        "links off: {links:?}"
    );
    assert_eq!(w.payments.refunds.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_crash_between_a_shard_take_and_its_record_is_finished_once_even_after_a_collect() {
    let w = world(&[("prod_a", 20, PAID - 60)]);
    spread(&w, "prod_a", 4).await;
    session(&w, "cs_crash", &[("prod_a", 2)]);
    session(&w, "cs_crash2", &[("prod_a", 3)]);
    w.store.fail_records.store(2, Ordering::SeqCst);
    assert!(w.app.handle(&completed("evt_1", "cs_crash")).await.is_err());
    assert!(
        w.app
            .handle(&completed("evt_2", "cs_crash2"))
            .await
            .is_err()
    );
    assert_eq!(level(&w, "prod_a").await.0, 15, "both took");
    // The first is redelivered while still spread: its mark on the shard is recorded.
    w.app.handle(&completed("evt_1", "cs_crash")).await.unwrap();
    // The product is collected before the second's redelivery: the mark goes with the units.
    let (s, p) = ids("prod_a");
    assert!(
        shards::collect(&w.store, &s, &p, Timestamp(0))
            .await
            .unwrap()
    );
    assert_eq!(w.store.snapshot().takes.len(), 1, "carried to the item");
    for _ in 0..2 {
        w.app
            .handle(&completed("evt_2", "cs_crash2"))
            .await
            .unwrap();
    }
    assert_eq!(level(&w, "prod_a").await.0, 15, "taken once each");
    assert_eq!(
        order(&w, "cs_crash").unwrap().status,
        OrderStatus::Fulfilled
    );
    assert_eq!(
        order(&w, "cs_crash2").unwrap().status,
        OrderStatus::Fulfilled
    );
    let state = w.store.snapshot();
    let sold: Vec<_> = state
        .ledger
        .iter()
        .filter(|e| e.cause.kind == CauseKind::Order)
        .map(|e| (e.delta, e.shard.is_some()))
        .collect();
    assert_eq!(sold, vec![(-2, true), (-3, true)]);
}

#[tokio::test]
async fn any_other_write_collects_first_and_a_commit_to_a_spread_item_is_refused() {
    let w = world(&[("prod_a", 10, PAID - 60), ("prod_b", 5, PAID - 60)]);
    spread(&w, "prod_a", 2).await;
    // The store refuses an item write to a spread item outright.
    let item = w.store.snapshot().items[&ids("prod_a")].clone();
    let write = stockbridge_domain::decide_stock_change(
        &item,
        stockbridge_domain::StockChange::Adjust(1),
        "test",
        Timestamp(0),
    )
    .unwrap()
    .write;
    assert!(matches!(
        w.store.commit(&write).await,
        Err(StoreError::Conflict)
    ));
    // A multi-product order collects it and decides on every unit.
    session(&w, "cs_two", &[("prod_a", 9), ("prod_b", 1)]);
    w.app.handle(&completed("evt_1", "cs_two")).await.unwrap();
    assert_eq!(order(&w, "cs_two").unwrap().status, OrderStatus::Fulfilled);
    let state = w.store.snapshot();
    assert_eq!(state.items[&ids("prod_a")].spread, None);
    assert_eq!(state.items[&ids("prod_a")].available, 1);
}

#[tokio::test]
async fn the_reconciler_reports_a_shard_whose_level_is_not_its_ledgers() {
    let w = world(&[("prod_a", 10, PAID - 60)]);
    spread(&w, "prod_a", 2).await;
    let o = &orders_at(1, 2, 1)[0];
    session(&w, o, &[("prod_a", 1)]);
    w.app.handle(&completed("evt_1", o)).await.unwrap();
    let clean = w.app.check_invariants(None, None, false).await.unwrap();
    assert!(clean.discrepancies.is_empty(), "{:?}", clean.discrepancies);
    // A write that bypassed the ledger: shard 0 set to 9 units, no entry.
    let (s, p) = ids("prod_a");
    let shard = w.store.read_shards(&s, &p, 2).await.unwrap()[0];
    let item = w.store.snapshot().items[&ids("prod_a")].clone();
    let plan = stockbridge_domain::shard::Regroup {
        store_id: s,
        product_id: p,
        writes: vec![stockbridge_domain::shard::NodeWrite {
            shard: Some(0),
            expected_version: shard.version,
            available: 9,
            version: shard.version + 1,
        }],
        spread: item.spread,
        ledger: vec![],
    };
    w.store.regroup(&plan).await.unwrap();
    // The version moved and no entry is there: a take in flight looks the same, not reported.
    let r = w.app.check_invariants(None, None, false).await.unwrap();
    assert!(r.discrepancies.is_empty(), "{:?}", r.discrepancies);
    // Same version as the ledger's, another level: reported, left alone.
    let mut plan = plan;
    plan.writes[0] = stockbridge_domain::shard::NodeWrite {
        shard: Some(0),
        expected_version: shard.version + 1,
        available: 4,
        version: shard.version,
    };
    w.store.regroup(&plan).await.unwrap();
    let r = w.app.check_invariants(None, None, false).await.unwrap();
    let [d] = r.discrepancies.as_slice() else {
        panic!("one discrepancy: {:?}", r.discrepancies)
    };
    assert_eq!(d.what, "spread_stock_matches_its_ledger");
    assert!(d.subject.ends_with("/shard 0"), "{}", d.subject);
    assert_eq!(d.found, "4 available");
}

#[tokio::test]
async fn an_order_that_finds_its_shards_frozen_finishes_the_collect_and_sells_from_the_item() {
    let w = world(&[("prod_a", 12, PAID - 60)]);
    spread(&w, "prod_a", 4).await;
    // A collect that stopped after freezing the shards (a crash, a timeout).
    let (s, p) = ids("prod_a");
    let e = w.store.snapshot().items[&ids("prod_a")]
        .spread
        .unwrap()
        .epoch;
    w.store.freeze_shards(&s, &p, 4, e).await.unwrap();
    session(&w, "cs_after_freeze", &[("prod_a", 2)]);
    w.app
        .handle(&completed("evt_1", "cs_after_freeze"))
        .await
        .unwrap();
    assert_eq!(
        order(&w, "cs_after_freeze").unwrap().status,
        OrderStatus::Fulfilled
    );
    let item = &w.store.snapshot().items[&ids("prod_a")];
    assert_eq!(
        (item.available, item.spread),
        (10, None),
        "collected, then sold"
    );
}

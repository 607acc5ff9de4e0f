//! Sharded stock against the local DynamoDB API (`stockbridge_domain::shard`, the adapter's
//! `shards.rs`): a spread writes the shards and the item in one transaction, a take on a shard
//! leaves its mark there under the spread's epoch, its ledger entry goes under the shard's key,
//! a refill moves units between two shards, a collect carries units and marks back to the item,
//! and the item refuses every other write while spread. Run with `scripts/test`.

use stockbridge_app::ports::{InventoryStore, ShardStore, StoreError};
use stockbridge_app::shards;
use stockbridge_domain::shard::{self, Move, Regroup};
use stockbridge_domain::take::{StockTake, with_take};
use stockbridge_domain::*;
use stockbridge_dynamodb::DynamoStore;

mod common;

fn ids() -> (StoreId, ProductId) {
    (
        StoreId::parse("s1").unwrap(),
        ProductId::parse("prod_hot").unwrap(),
    )
}

async fn spread_store(units: u64, k: u16) -> DynamoStore {
    let s = common::store().await;
    let i = common::item("prod_hot", units);
    s.create_item(&i, &common::entry(&i)).await.unwrap();
    let (st, p) = ids();
    let item = shards::spread(&s, &st, &p, k, Timestamp(10)).await.unwrap();
    assert_eq!(item.spread.map(|x| x.shards), Some(k));
    s
}

async fn units(s: &DynamoStore, k: u16) -> Vec<u64> {
    let (st, p) = ids();
    s.read_shards(&st, &p, k)
        .await
        .unwrap()
        .iter()
        .map(|x| x.available)
        .collect()
}

/// A paid order of `q` taken on shard `index` of the current spread.
fn take(order: &str, q: u64, index: u16, epoch: u64) -> StockTake {
    let (st, p) = ids();
    StockTake {
        store_id: st,
        product_id: p,
        order_id: OrderId::parse(order).unwrap(),
        quantity: q,
        managed_since: Timestamp(0),
        at: Timestamp(20),
        shard: Some((index, epoch)),
    }
}

/// The record of a take (order and its ledger entry under the shard), as the inventory makes it.
fn record(t: &StockTake, mark: take::TakeMark) -> WriteSet {
    let f = common::facts(t.order_id.as_str(), &[("prod_hot", t.quantity)]);
    let mut items = Items::new();
    let mut i = common::item("prod_hot", 1 << 40);
    i.managed_since = Timestamp(0);
    items.insert(i.product_id.clone(), i);
    let d = with_take(decide_checkout(None, &f, &items, Timestamp(20)), mark);
    let mut w = d.write;
    for e in &mut w.ledger {
        e.shard = mark.shard;
    }
    w
}

async fn epoch(s: &DynamoStore) -> u64 {
    let (st, p) = ids();
    s.load(&OrderId::parse("cs_none").unwrap(), &st, &[p])
        .await
        .unwrap()
        .1
        .values()
        .next()
        .unwrap()
        .spread
        .unwrap()
        .epoch
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_spread_product_reads_as_its_sum_and_its_item_refuses_other_writes() {
    let s = spread_store(10, 4).await;
    assert_eq!(units(&s, 4).await, vec![3, 3, 2, 2]);
    let (st, p) = ids();
    let item = s.item(&st, &p).await.unwrap().unwrap();
    assert_eq!((item.available, item.level().available), (0, 10));
    // The store's guard: an item write decided on the item alone is refused.
    let d = decide_stock_change(&item, StockChange::Adjust(1), "test", Timestamp(30)).unwrap();
    assert!(matches!(
        s.commit(&d.write).await,
        Err(StoreError::Conflict)
    ));
    // The readers' scan counts the shards too.
    let listed = stockbridge_app::ports::CatalogReader::store_items(&s, &st)
        .await
        .unwrap();
    assert_eq!(listed[0].level().available, 10);
    assert_eq!(listed.len(), 1, "shards are not catalog items");
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_take_on_a_shard_is_conditional_on_its_epoch_units_and_mark_and_recorded_under_it() {
    let s = spread_store(8, 2).await; // 4 + 4
    let e = epoch(&s).await;
    assert!(
        s.take_stock(&take("cs_old", 1, 0, e - 1))
            .await
            .unwrap()
            .is_none(),
        "old epoch"
    );
    assert!(
        s.take_stock(&take("cs_big", 4, 0, e))
            .await
            .unwrap()
            .is_none(),
        "never empties"
    );
    let t = take("cs_1", 3, 0, e);
    let mark = s.take_stock(&t).await.unwrap().expect("taken");
    assert_eq!((mark.available, mark.quantity, mark.shard), (1, 3, Some(0)));
    assert!(
        s.take_stock(&t).await.unwrap().is_none(),
        "its mark is there"
    );
    let (st, p) = ids();
    assert_eq!(
        s.shard_mark(&st, &p, 0, &t.order_id).await.unwrap(),
        Some(mark)
    );
    s.record_take(&t, &record(&t, mark)).await.unwrap();
    let entry = s
        .ledger_entry(&st, &p, Some(0), mark.version)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((entry.delta, entry.level, entry.shard), (-3, 1, Some(0)));
    let on_item = s.ledger_entry(&st, &p, None, mark.version).await.unwrap();
    assert!(
        on_item
            .as_ref()
            .is_none_or(|e| e.cause.kind == CauseKind::Move),
        "the item's own chain does not hold it: {on_item:?}"
    );
    // The reconciler's sweep removes the recorded mark.
    assert_eq!(s.forget_recorded_takes(&st, &p).await.unwrap(), 1);
    assert_eq!(s.shard_mark(&st, &p, 0, &t.order_id).await.unwrap(), None);
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_refill_moves_units_between_two_shards_conditional_on_both_versions() {
    let s = spread_store(8, 2).await;
    let (st, p) = ids();
    let item = s.item(&st, &p).await.unwrap().unwrap();
    let snapshot = s.read_shards(&st, &p, 2).await.unwrap();
    let m = Move {
        from: (1, snapshot[1].version),
        to: (0, snapshot[0].version),
        units: 3,
    };
    let plan = shard::moved(&item, &snapshot, m, Timestamp(30)).unwrap();
    s.regroup(&plan).await.unwrap();
    assert_eq!(units(&s, 2).await, vec![7, 1]);
    assert!(
        matches!(s.regroup(&plan).await, Err(StoreError::Conflict)),
        "versions moved"
    );
    assert_eq!(s.item(&st, &p).await.unwrap().unwrap().level().available, 8);
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_collect_carries_units_and_unrecorded_marks_back_to_the_item() {
    let s = spread_store(10, 2).await;
    let e = epoch(&s).await;
    let (st, p) = ids();
    // A take whose record was lost, then the product collected.
    let lost = take("cs_lost", 2, 1, e);
    let mark = s.take_stock(&lost).await.unwrap().unwrap();
    let before = s.item(&st, &p).await.unwrap().unwrap().level();
    assert!(shards::collect(&s, &st, &p, Timestamp(40)).await.unwrap());
    assert_eq!(units(&s, 2).await, vec![0, 0]);
    let (_, items) = s
        .load(&lost.order_id, &st, std::slice::from_ref(&p))
        .await
        .unwrap();
    let item = &items[&p];
    assert_eq!((item.available, item.spread), (8, None));
    assert!(
        item.level().version > before.version,
        "the level's version goes on rising"
    );
    assert_eq!(
        item.unrecorded_take,
        Some(mark),
        "the mark, with its shard, on the item"
    );
    assert_eq!(
        s.shard_mark(&st, &p, 1, &lost.order_id).await.unwrap(),
        None
    );
    // Recorded from the item (its entry under the shard it took from), then swept.
    let from_item = StockTake {
        shard: None,
        ..lost
    };
    s.record_take(&from_item, &record(&from_item, mark))
        .await
        .unwrap();
    assert!(
        s.ledger_entry(&st, &p, Some(1), mark.version)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(s.forget_recorded_takes(&st, &p).await.unwrap(), 1);
    // Spread again: a new epoch; the old one's takes are refused.
    shards::spread(&s, &st, &p, 2, Timestamp(50)).await.unwrap();
    assert!(epoch(&s).await > e);
    assert!(
        s.take_stock(&take("cs_late", 1, 0, e))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(units(&s, 2).await, vec![4, 4]);
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_collect_freezes_the_shards_drops_recorded_marks_and_a_stale_refill_cannot_strand_units()
{
    let s = spread_store(16, 4).await; // 4 each
    let e = epoch(&s).await;
    let (st, p) = ids();
    let recorded = take("cs_rec", 1, 2, e);
    let mark = s.take_stock(&recorded).await.unwrap().unwrap();
    s.record_take(&recorded, &record(&recorded, mark))
        .await
        .unwrap();
    // Frozen: no take lands any more under the spread's epoch.
    s.freeze_shards(&st, &p, 4, e).await.unwrap();
    assert!(
        s.take_stock(&take("cs_frozen", 1, 0, e))
            .await
            .unwrap()
            .is_none()
    );
    assert!(shards::collect(&s, &st, &p, Timestamp(40)).await.unwrap());
    let (_, items) = s
        .load(&recorded.order_id, &st, std::slice::from_ref(&p))
        .await
        .unwrap();
    assert_eq!(items[&p].available, 15);
    assert_eq!(
        items[&p].unrecorded_take, None,
        "a recorded take's mark is not carried"
    );
    // Spread again over fewer shards: a refill decided on the old spread moves nothing.
    shards::spread(&s, &st, &p, 2, Timestamp(50)).await.unwrap();
    let item = s.item(&st, &p).await.unwrap().unwrap();
    let old = s.read_shards(&st, &p, 4).await.unwrap();
    let stale = Regroup {
        spread: Some(Spread {
            shards: 4,
            epoch: e,
            ..Spread::default()
        }),
        ..shard::moved(
            &item,
            &old,
            Move {
                from: (0, old[0].version),
                to: (3, old[3].version),
                units: 2,
            },
            Timestamp(60),
        )
        .unwrap()
    };
    assert!(matches!(s.regroup(&stale).await, Err(StoreError::Conflict)));
    assert_eq!(units(&s, 4).await, vec![8, 7, 0, 0]);
    assert_eq!(
        s.item(&st, &p).await.unwrap().unwrap().level().available,
        15
    );
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_collect_carries_many_unrecorded_takes_in_batches_and_leaves_recorded_marks_to_the_sweep()
{
    let s = spread_store(200, 2).await; // 100 + 100
    let e = epoch(&s).await;
    let (st, p) = ids();
    // A freeze under another epoch changes nothing.
    s.freeze_shards(&st, &p, 2, e + 1).await.unwrap();
    let lost: Vec<StockTake> = (0..35)
        .map(|i| take(&format!("cs_lost_{i}"), 1, 0, e))
        .collect();
    for t in &lost {
        assert!(s.take_stock(t).await.unwrap().is_some(), "not frozen");
    }
    let done = take("cs_done", 2, 1, e);
    let mark = s.take_stock(&done).await.unwrap().unwrap();
    s.record_take(&done, &record(&done, mark)).await.unwrap();
    assert!(shards::collect(&s, &st, &p, Timestamp(40)).await.unwrap());
    for t in &lost {
        let (_, items) = s
            .load(&t.order_id, &st, std::slice::from_ref(&p))
            .await
            .unwrap();
        let m = items[&p].unrecorded_take.expect("carried to the item");
        assert_eq!((m.quantity, m.shard), (1, Some(0)));
    }
    let item = s.item(&st, &p).await.unwrap().unwrap();
    assert_eq!((item.available, item.spread), (163, None));
    // The recorded take's mark stays on its shard until the sweep, which removes it.
    assert!(
        s.shard_mark(&st, &p, 1, &done.order_id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(s.forget_recorded_takes(&st, &p).await.unwrap() >= 1);
}

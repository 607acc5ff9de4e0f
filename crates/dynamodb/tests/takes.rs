//! The hot path's take against the local DynamoDB API (`stockbridge_domain::take`, the
//! adapter's `takes.rs`): one relative conditional update leaving a mark, the mark found again by
//! the order's next read, removed only once the order is recorded, items from the previous
//! release taken as they are, and no conflict between concurrent takes under the test bed's
//! model of real DynamoDB. Run with `scripts/test`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use stockbridge_app::ports::InventoryStore;
use stockbridge_domain::take::{self, Commit, StockTake, TakeMark, commit_of, with_take};
use stockbridge_domain::*;
use stockbridge_dynamodb::DynamoStore;

mod common;

async fn raw_item(s: &DynamoStore, p: &str) -> HashMap<String, AttributeValue> {
    let c = aws_sdk_dynamodb::Client::new(&aws_config::load_from_env().await);
    c.get_item()
        .table_name(s.table())
        .key("pk", AttributeValue::S(format!("ITEM#s1#{p}")))
        .key("sk", AttributeValue::S("ITEM".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap()
}

/// How many takes' marks an item carries (one `t{16 hex}v` attribute each).
fn marks(item: &HashMap<String, AttributeValue>) -> usize {
    item.keys()
        .filter(|k| k.starts_with('t') && k.ends_with('v') && k.len() == 18)
        .count()
}

/// The order `order` of `q` units of `p`, decided on fresh state: its decision and its take.
async fn decide(s: &DynamoStore, order: &str, p: &str, q: u64) -> (Decision, Commit) {
    let f = common::facts(order, &[(p, q)]);
    let products = [ProductId::parse(p).unwrap()];
    let (existing, items) = s.load(&f.order_id, &f.store_id, &products).await.unwrap();
    let d = decide_checkout(existing.as_ref(), &f, &items, Timestamp(5));
    let c = commit_of(&d);
    (d, c)
}

async fn take_and_record(s: &DynamoStore, order: &str, p: &str, q: u64) -> TakeMark {
    let (d, c) = decide(s, order, p, q).await;
    let Commit::Take(t) = c else {
        panic!("{order}: a take, got {c:?}")
    };
    let mark = s.take_stock(&t).await.unwrap().expect("taken");
    s.record_take(&t, &with_take(d, mark).write).await.unwrap();
    mark
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_take_leaves_its_mark_until_recorded_and_the_next_take_removes_it() {
    let s = common::store().await;
    let i = common::item("prod_a", 10);
    s.create_item(&i, &common::entry(&i)).await.unwrap();

    let (d, c) = decide(&s, "cs_1", "prod_a", 2).await;
    let Commit::Take(t) = c else { panic!("a take") };
    let mark = s.take_stock(&t).await.unwrap().expect("taken");
    assert_eq!(
        mark,
        TakeMark {
            version: 2,
            available: 8,
            held: 0,
            quantity: 2,
            shard: None,
        }
    );
    // The order's next read finds its take; another order's does not.
    let products = [i.product_id.clone()];
    let (_, items) = s.load(&t.order_id, &i.store_id, &products).await.unwrap();
    assert_eq!(items[&i.product_id].unrecorded_take, Some(mark));
    let other = OrderId::parse("cs_other").unwrap();
    let (_, items) = s.load(&other, &i.store_id, &products).await.unwrap();
    assert_eq!(items[&i.product_id].unrecorded_take, None);
    assert_eq!(s.take_stock(&t).await.unwrap(), None, "never twice");

    s.record_take(&t, &with_take(d, mark).write).await.unwrap();
    assert_eq!(
        marks(&raw_item(&s, "prod_a").await),
        1,
        "kept until the next take"
    );
    take_and_record(&s, "cs_2", "prod_a", 1).await;
    let raw = raw_item(&s, "prod_a").await;
    assert_eq!(marks(&raw), 1, "cs_1's mark went with cs_2's take");
    let (_, items) = s.load(&t.order_id, &i.store_id, &products).await.unwrap();
    assert_eq!(items[&i.product_id].unrecorded_take, None);
    assert_eq!(items[&i.product_id].available, 7);
    let ledger = s.ledger(&i.store_id, &i.product_id).await.unwrap();
    let levels: Vec<_> = ledger
        .iter()
        .map(|e| (e.version, e.delta, e.level))
        .collect();
    assert_eq!(levels, vec![(1, 10, 10), (2, -2, 8), (3, -1, 7)]);
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_take_refused_by_its_condition_changes_nothing() {
    let s = common::store().await;
    let i = common::item("prod_a", 2);
    s.create_item(&i, &common::entry(&i)).await.unwrap();
    let take = StockTake {
        store_id: i.store_id.clone(),
        product_id: i.product_id.clone(),
        order_id: OrderId::parse("cs_1").unwrap(),
        quantity: 2,
        managed_since: Timestamp(0),
        at: Timestamp(5),
        shard: None,
    };
    assert_eq!(
        s.take_stock(&take).await.unwrap(),
        None,
        "it would sell out"
    );
    let moved = StockTake {
        quantity: 1,
        managed_since: Timestamp(99),
        ..take.clone()
    };
    assert_eq!(
        s.take_stock(&moved).await.unwrap(),
        None,
        "the boundary moved"
    );
    let after = s.item(&i.store_id, &i.product_id).await.unwrap().unwrap();
    assert_eq!((after.available, after.version), (2, 1));
    assert_eq!(marks(&raw_item(&s, "prod_a").await), 0);
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn marks_left_behind_go_only_once_their_order_is_recorded() {
    let s = common::store().await;
    let i = common::item("prod_a", 10);
    s.create_item(&i, &common::entry(&i)).await.unwrap();
    take_and_record(&s, "cs_1", "prod_a", 1).await;
    // Then cs_1's function stops; cs_2's, another, stopped between its take and its record.
    let second = common::store_on(s.table()).await;
    let (_, c) = decide(&second, "cs_2", "prod_a", 1).await;
    let Commit::Take(t2) = c else {
        panic!("a take")
    };
    let unrecorded = second.take_stock(&t2).await.unwrap().expect("taken");
    assert_eq!(marks(&raw_item(&s, "prod_a").await), 2);

    // Another function (the reconciler) finds both marks.
    let other = common::store_on(s.table()).await;
    assert_eq!(
        other
            .forget_recorded_takes(&i.store_id, &i.product_id)
            .await
            .unwrap(),
        1
    );
    assert_eq!(marks(&raw_item(&s, "prod_a").await), 1);
    let products = [i.product_id.clone()];
    let (_, items) = s.load(&t2.order_id, &i.store_id, &products).await.unwrap();
    assert_eq!(items[&i.product_id].unrecorded_take, Some(unrecorded));
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn an_item_stored_by_the_previous_release_is_taken_as_it_is() {
    let s = common::store().await;
    let i = common::item("prod_a", 5);
    s.create_item(&i, &common::entry(&i)).await.unwrap();
    let c = aws_sdk_dynamodb::Client::new(&aws_config::load_from_env().await);
    c.update_item()
        .table_name(s.table())
        .key("pk", AttributeValue::S("ITEM#s1#prod_a".into()))
        .key("sk", AttributeValue::S("ITEM".into()))
        .update_expression("REMOVE held, managed_since, deactivated_links")
        .send()
        .await
        .unwrap();
    let mark = take_and_record(&s, "cs_1", "prod_a", 2).await;
    assert_eq!(
        mark,
        TakeMark {
            version: 2,
            available: 3,
            held: 0,
            quantity: 2,
            shard: None,
        }
    );
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn concurrent_takes_of_one_item_never_conflict_under_the_model() {
    let s = common::store().await;
    let i = common::item("prod_a", 100);
    s.create_item(&i, &common::entry(&i)).await.unwrap();
    common::model(
        "/_model",
        &format!(
            r#"{{"conflicts": true, "service_ms": 50, "tables": ["{}"]}}"#,
            s.table()
        ),
    );
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let s = common::clone_store(&s);
            tokio::spawn(async move { take_and_record(&s, &format!("cs_{n}"), "prod_a", 1).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let report = common::model("/_model", "");
    common::model("/_model/reset", "{}");
    assert!(report.contains(r#""single_writes": 8"#), "{report}");
    assert!(!report.contains(r#""conflict_"#), "{report}");
    assert!(
        report.contains(r#""serialised_waits""#),
        "the takes overlapped: {report}"
    );
    let after = s.item(&i.store_id, &i.product_id).await.unwrap().unwrap();
    assert_eq!((after.available, after.version), (92, 9));
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_duplicate_take_is_given_back_only_while_its_mark_is_there() {
    let s = common::store().await;
    let i = common::item("prod_a", 10);
    s.create_item(&i, &common::entry(&i)).await.unwrap();
    take_and_record(&s, "cs_1", "prod_a", 2).await;
    // Another function's delivery of cs_1 read before the record and takes after its mark went.
    let other = common::store_on(s.table()).await;
    take_and_record(&other, "cs_2", "prod_a", 1).await; // removes nothing of cs_1's: not its own
    s.forget_recorded_takes(&i.store_id, &i.product_id)
        .await
        .unwrap();
    let order = OrderId::parse("cs_1").unwrap();
    let dup = StockTake {
        store_id: i.store_id.clone(),
        product_id: i.product_id.clone(),
        order_id: order.clone(),
        quantity: 2,
        managed_since: Timestamp(0),
        at: Timestamp(9),
        shard: None,
    };
    let mark = other
        .take_stock(&dup)
        .await
        .unwrap()
        .expect("taken again: a duplicate");
    assert_eq!(mark.version, 4);
    // Its record is refused: the order exists.
    let again = common::facts("cs_1", &[("prod_a", 2)]);
    let d = decide_checkout(None, &again, &common::items_of(&s, &i).await, Timestamp(9));
    let refused = other.record_take(&dup, &with_take(d, mark).write).await;
    assert!(
        matches!(refused, Err(stockbridge_app::ports::StoreError::Conflict)),
        "{refused:?}"
    );
    // Nothing at the take's version names cs_1: it is given back.
    assert!(
        s.ledger_entry(&i.store_id, &i.product_id, None, 4)
            .await
            .unwrap()
            .is_none()
    );
    let products = [i.product_id.clone()];
    let (_, items) = s.load(&order, &i.store_id, &products).await.unwrap();
    let item = &items[&i.product_id];
    assert_eq!(item.unrecorded_take, Some(mark));
    let back = take::undo(item, &order, mark, Timestamp(10));
    s.undo_take(&order, mark, None, &back.write).await.unwrap();
    let after = s.item(&i.store_id, &i.product_id).await.unwrap().unwrap();
    assert_eq!((after.available, after.version), (7, 5));
    assert_eq!(marks(&raw_item(&s, "prod_a").await), 0);
    assert!(
        matches!(
            s.undo_take(&order, mark, None, &back.write).await,
            Err(stockbridge_app::ports::StoreError::Conflict)
        ),
        "never twice: the mark is gone"
    );
    let ledger = s.ledger(&i.store_id, &i.product_id).await.unwrap();
    let moves: Vec<_> = ledger
        .iter()
        .map(|e| (e.version, e.delta, e.level))
        .collect();
    assert_eq!(
        moves,
        vec![(1, 10, 10), (2, -2, 8), (3, -1, 7), (4, -2, 5), (5, 2, 7)]
    );
}

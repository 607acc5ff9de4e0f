//! Operator operations with an id: a rerun (after a timeout or an unclear error) is applied once.

use std::sync::atomic::Ordering;

use stockbridge_app::ports::InventoryStore;
use stockbridge_domain::StockChange;

use crate::holds_support::*;

#[tokio::test]
async fn an_operation_rerun_with_its_id_changes_nothing() {
    let (inv, store, _, _) = setup(5).await;
    let (store_id, product) = (s1(), pid("tee"));
    let adjust = |op: &'static str| {
        inv.apply_operation(
            &store_id,
            &product,
            StockChange::Adjust(2),
            None,
            "op",
            Some(op),
        )
    };
    let (level, already) = adjust("op_1").await.unwrap();
    assert_eq!((level.available, already), (7, false));
    let (level, already) = adjust("op_1").await.unwrap();
    assert_eq!((level.available, already), (7, true), "applied once");
    let ledger = store.snapshot().ledger;
    assert_eq!(
        ledger
            .iter()
            .filter(|e| e.operation.as_deref() == Some("op_1"))
            .count(),
        1
    );
    // Another id is another operation.
    assert_eq!(adjust("op_2").await.unwrap().0.available, 9);
    // A conflict that is the same operation committed meanwhile: answered as applied.
    store.inject_conflicts.store(1, Ordering::SeqCst);
    let (level, already) = adjust("op_2").await.unwrap();
    assert_eq!((level.available, already), (9, true));
    assert!(store.operation_recorded("op_2").await.unwrap().is_some());
    // The same id for another change is refused, not answered "already applied".
    let reused = inv
        .apply_operation(
            &store_id,
            &product,
            StockChange::Adjust(5),
            None,
            "op",
            Some("op_2"),
        )
        .await;
    assert!(
        matches!(
            reused,
            Err(stockbridge_app::stock_admin::StockError::OperationReused { .. })
        ),
        "{reused:?}"
    );
    assert_eq!(
        store
            .item(&s1(), &pid("tee"))
            .await
            .unwrap()
            .unwrap()
            .available,
        9
    );
}

#[tokio::test]
async fn held_units_left_wrong_by_an_older_version_are_found_and_repaired() {
    let (inv, store, _, _) = setup(5).await;
    // A hold of 2 by this version: held 2, available 3.
    held(
        &inv.reserve(
            &request(2),
            "k",
            &stockbridge_app::reservations::HoldLimits::default(),
            TIME,
        )
        .await
        .unwrap(),
    );
    // An older function released another hold without knowing `held`: 3 units too many.
    let mut item = store.item(&s1(), &pid("tee")).await.unwrap().unwrap();
    item.held = 5;
    store.put_item(item);

    let found = inv.check_held(&s1(), false).await.unwrap();
    assert_eq!(
        found
            .iter()
            .map(|d| (d.recorded, d.pending, d.repaired))
            .collect::<Vec<_>>(),
        vec![(5, 2, false)]
    );
    let repaired = inv.check_held(&s1(), true).await.unwrap();
    assert!(repaired[0].repaired);
    let item = store.item(&s1(), &pid("tee")).await.unwrap().unwrap();
    assert_eq!((item.available, item.held), (3, 2), "available unchanged");
    assert!(inv.check_held(&s1(), true).await.unwrap().is_empty());
}

//! The adapter against real DynamoDB's conflict behaviour, as the test bed's DynamoDB model
//! (devstack/dynamo_model.py, in front of moto) imitates it. Run with `scripts/test`.

use std::time::Duration;

use stockbridge_app::ports::{InventoryStore, StoreError};
use stockbridge_domain::*;

mod common;

// Two worker threads: `common::model` blocks its thread while the spawned commit must go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_single_write_on_an_item_a_transaction_holds_is_retryable_not_invalid() {
    let s = common::store().await;
    let i = common::item("prod_a", 3);
    let e = common::entry(&i);
    s.create_item(&i, &e).await.unwrap();
    let f = common::facts("cs_held", &[("prod_a", 1)]);
    let (_, items) = s
        .load(
            &f.order_id,
            &f.store_id,
            std::slice::from_ref(&i.product_id),
        )
        .await
        .unwrap();
    let d = decide_checkout(None, &f, &items, Timestamp(5));

    // This table only: each write is in flight for 2 s, and answers when it is done.
    common::model(
        "/_model",
        &format!(
            r#"{{"conflicts": true, "service_ms": 2000, "tables": ["{}"]}}"#,
            s.table()
        ),
    );
    let committing = {
        let (s, w) = (s.clone(), d.write.clone());
        tokio::spawn(async move { s.commit(&w).await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !common::model("/_model", "").contains(r#""transactions": 1"#) {
        assert!(
            std::time::Instant::now() < deadline && !committing.is_finished(),
            "the transaction never reached the model"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The order's transaction is ongoing: DynamoDB refuses a write to it for now, which is
    // worth retrying (a Lambda retry, or the caller's), never a poison event.
    let r = s
        .record_refund(&f.order_id, &RefundId::parse("re_1").unwrap(), Timestamp(9))
        .await;
    let report = common::model("/_model", "");
    common::model("/_model/reset", "{}");
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    assert!(report.contains(r#""conflict_single_write": 1"#), "{report}");
    committing.await.unwrap().unwrap();
    s.record_refund(&f.order_id, &RefundId::parse("re_1").unwrap(), Timestamp(9))
        .await
        .unwrap();
}

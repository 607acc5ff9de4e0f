//! The broadcaster: levels published from the stream's changed keys, newest only, each item
//! once per batch, and a failure reported for its item while the others are still published.

use std::sync::atomic::Ordering;

use stockbridge_app::broadcast::broadcast_levels;
use stockbridge_app::ports::NoMerchantEvents;
use stockbridge_domain::{ProductId, StoreId};

use crate::support::{STORE, completed, session, world};

fn key(p: &str) -> (StoreId, ProductId) {
    (StoreId::parse(STORE).unwrap(), ProductId::parse(p).unwrap())
}

#[tokio::test]
async fn a_burst_of_orders_on_one_item_is_one_message_with_the_newest_level() {
    let w = world(&[("prod_tee", 10, 0), ("prod_mug", 5, 0)]);
    for n in 0..4 {
        let id = format!("cs_test_{n}");
        session(&w, &id, &[("prod_tee", 1)]);
        w.app
            .handle(&completed(&format!("evt_{n}"), &id))
            .await
            .unwrap();
    }
    w.publisher.published.lock().unwrap().clear();
    // The stream's records for the four orders and one for the mug, in stream order.
    let changed = [
        key("prod_tee"),
        key("prod_tee"),
        key("prod_mug"),
        key("prod_tee"),
        key("prod_tee"),
    ];
    let report =
        broadcast_levels(&w.store, &w.publisher, None::<&NoMerchantEvents>, &changed).await;
    assert_eq!(
        (report.published, report.gone, report.failed.len()),
        (2, 0, 0)
    );
    let published = w.publisher.published.lock().unwrap().clone();
    let shown: Vec<(String, u64, u64)> = published
        .iter()
        .map(|l| (l.product_id.to_string(), l.available, l.version))
        .collect();
    assert_eq!(
        shown,
        [("prod_tee".to_owned(), 6, 5), ("prod_mug".to_owned(), 5, 1)],
        "one message per item, the level as stored now, in the order first seen"
    );
}

#[tokio::test]
async fn an_item_deleted_since_its_record_has_nothing_to_publish() {
    let w = world(&[("prod_tee", 3, 0)]);
    let report = broadcast_levels(
        &w.store,
        &w.publisher,
        None::<&NoMerchantEvents>,
        &[key("prod_gone"), key("prod_tee")],
    )
    .await;
    assert_eq!((report.published, report.gone), (1, 1));
    assert_eq!(w.publisher.published.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_failed_publish_is_reported_for_its_item_and_the_others_still_go_out() {
    let w = world(&[("prod_tee", 3, 0), ("prod_mug", 2, 0)]);
    w.publisher.fail_next.store(1, Ordering::SeqCst);
    let report = broadcast_levels(
        &w.store,
        &w.publisher,
        None::<&NoMerchantEvents>,
        &[key("prod_tee"), key("prod_mug")],
    )
    .await;
    assert_eq!(report.published, 1);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, key("prod_tee"));
    assert!(
        report.failed[0].1.contains("injected failure"),
        "{:?}",
        report.failed
    );
    let published = w.publisher.published.lock().unwrap().clone();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].product_id.as_str(), "prod_mug");
}

/// IoT refuses every publish of one product for good (a 4xx), publishes the others.
struct Refusing<'a>(&'a stockbridge_app::memory::MemoryPublisher, &'static str);

impl stockbridge_app::ports::StockPublisher for Refusing<'_> {
    async fn publish(
        &self,
        level: &stockbridge_domain::StockLevel,
    ) -> Result<(), stockbridge_app::ports::PublishError> {
        if level.product_id.as_str() == self.1 {
            return Err(stockbridge_app::ports::PublishError {
                topic: level.product_id.to_string(),
                retryable: false,
                source: "403 not authorised".into(),
            });
        }
        self.0.publish(level).await
    }
}

#[tokio::test]
async fn a_level_refused_for_good_is_skipped_not_retried() {
    let w = world(&[("prod_tee", 3, 0), ("prod_mug", 2, 0)]);
    let refusing = Refusing(&w.publisher, "prod_tee");
    let report = broadcast_levels(
        &w.store,
        &refusing,
        None::<&NoMerchantEvents>,
        &[key("prod_tee"), key("prod_mug")],
    )
    .await;
    assert_eq!(
        (report.published, report.refused, report.failed.len()),
        (1, 1, 0)
    );
    let published = w.publisher.published.lock().unwrap().clone();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].product_id.as_str(), "prod_mug");
}

#[tokio::test]
async fn an_alert_that_cannot_go_out_never_holds_the_level_back_and_goes_out_later() {
    use stockbridge_app::memory::MemoryMerchantEvents;
    use stockbridge_app::ports::LowStockStore;
    let w = world(&[("prod_tee", 4, 0)]);
    let (s, p) = key("prod_tee");
    w.store.set_low_stock(&s, &p, Some(5)).await.unwrap();
    // Without events (a caller that does not alert), nothing is recorded.
    broadcast_levels(
        &w.store,
        &w.publisher,
        None::<&NoMerchantEvents>,
        &[key("prod_tee")],
    )
    .await;
    let state = |w: &crate::support::World| w.store.snapshot().items[&key("prod_tee")].low_stock;
    assert_eq!(state(&w).unwrap().crossings, 0);
    // EventBridge fails: the level is still published and the item not retried.
    let events = MemoryMerchantEvents::default();
    events.fail_next(1);
    let report = broadcast_levels(&w.store, &w.publisher, Some(&events), &[key("prod_tee")]).await;
    assert_eq!((report.published, report.alerts_failed), (1, 1));
    assert!(report.failed.is_empty());
    assert_eq!(state(&w).unwrap().pending, Some(1));
    // The next read sends it.
    let report = broadcast_levels(&w.store, &w.publisher, Some(&events), &[key("prod_tee")]).await;
    assert_eq!(report.alerts_failed, 0);
    assert_eq!(events.published().len(), 1);
    assert_eq!(state(&w).unwrap().pending, None);
}

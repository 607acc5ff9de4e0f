//! The use case behind the `broadcaster` Lambda: stock levels published from the table's
//! stream, so that the functions that change stock make no IoT call of their own.
//!
//! The table's stream is `KEYS_ONLY` (it also feeds the catalog-sync pipe, and changing its
//! view type would replace the stream under that pipe), so a record says only *which* item
//! changed. The broadcaster reads each changed item once per batch, strongly consistent, and
//! publishes the level it finds:
//! - **Newest only.** A burst of orders on one product is one read and one message per batch,
//!   whatever the number of records: the level read is at least as new as every record.
//! - **In version order.** Lambda hands a shard's records to one invocation at a time, in
//!   order, and an item's records all live in one shard (its partition key): each message of an
//!   item is read after the one before it was, so the retained message on the topic only ever
//!   moves forward — unlike several functions publishing the levels they each committed.
//! - **Nothing lost.** A read or a publish that may succeed later is reported for the item, and
//!   the caller has the batch retried from that item's first record; one refused for good (IoT
//!   answered 4xx) is logged at error and skipped, so it cannot hold back the other items of its
//!   stream shard (`stockbridge stock publish` shows it once fixed); a deleted item has nothing
//!   to show.
//!
//! Each item read is also checked against its low-stock threshold ([`crate::alerts`]): the
//! broadcaster sees every level, so `stockbridge.low_stock` needs no work on the order path.
//!
//! Link switches stay with the decision that crossed zero ([`crate::effects`]): who switched a
//! link off is known only there (a link the decision finds already off with someone else's
//! message is not stockbridge's), and they are rare (one per sell-out or restock), not per
//! order. They already act on the level at call time, so a late switch never undoes a newer one.

use std::collections::BTreeSet;

use futures_util::StreamExt;
use stockbridge_domain::{ProductId, StoreId};
use tracing::{error, warn};

use crate::alerts::watch_low_stock;
use crate::ports::{InventoryStore, LowStockStore, MerchantEvents, StockPublisher, StoreError};

/// One item the stream says changed.
pub type ItemKey = (StoreId, ProductId);

/// Items read and published at once: order only matters within an item, and each item is
/// published once per batch, so different items go out concurrently.
const CONCURRENCY: usize = 16;

/// What a batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BroadcastReport {
    /// Levels published (one per changed item).
    pub published: usize,
    /// Changed items no longer in the table (deleted): nothing to publish.
    pub gone: usize,
    /// Items whose level can never be published as it is (IoT refused the message itself: 400
    /// or 413; the stored item is unreadable): logged at error, counted in the `LevelsRefused`
    /// metric (alarmed) and skipped, so that one item cannot hold back every other item of its
    /// stream shard.
    pub refused: usize,
    /// Items whose low-stock alert could not be recorded or published (counted in the
    /// `LowStockAlertsFailed` metric, alarmed): it stays pending and goes out at a later read.
    pub alerts_failed: usize,
    /// Items whose read or publish failed and may succeed later, with the reason: the caller
    /// has them retried.
    #[serde(skip)]
    pub failed: Vec<(ItemKey, String)>,
}

enum Outcome {
    /// Published; with a low-stock alert that could not be recorded or published (it stays
    /// pending for a later read).
    Published {
        alert_failed: Option<String>,
    },
    Gone,
    Refused(String),
    Failed(String),
}

async fn broadcast_one<S, P, E>(
    store: &S,
    publisher: &P,
    events: Option<&E>,
    key: &ItemKey,
) -> Outcome
where
    S: InventoryStore + LowStockStore,
    P: StockPublisher,
    E: MerchantEvents,
{
    let (store_id, product_id) = key;
    let mut published = None;
    let mut alert_failed = None;
    // A spread product's records come from its item's and its shards' partitions, so two
    // invocations can publish its levels out of order: each reads again after publishing and
    // publishes again while the level moved, so the retained message ends at the newest.
    for _ in 0..REPUBLISH_ROUNDS {
        let item = match store.item(store_id, product_id).await {
            Ok(Some(item)) => item,
            Ok(None) if published.is_some() => return Outcome::Published { alert_failed },
            Ok(None) => return Outcome::Gone,
            // An item that cannot be read as an item never will be; anything else from the
            // store (throttling, a permission, the network) may pass later.
            Err(e @ StoreError::Corrupt { .. }) => return Outcome::Refused(e.to_string()),
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let level = item.level();
        if published == Some(level.version) {
            break;
        }
        match publisher.publish(&level).await {
            Ok(()) => published = Some(level.version),
            Err(e) if e.retryable => return Outcome::Failed(e.to_string()),
            Err(e) => return Outcome::Refused(e.to_string()),
        }
        // After the level, and never failing the item: a stream retry would hold back every
        // later item of its shard for an alert. A crossing already recorded stays pending and
        // goes out at a later read (the item's next change, `stockbridge stock publish`).
        if let Some(events) = events {
            alert_failed = watch_low_stock(store, events, &item, &level)
                .await
                .err()
                .map(|e| e.to_string());
        }
        if item.spread.is_none() {
            break; // one partition, read in order: nothing can overtake it
        }
    }
    Outcome::Published { alert_failed }
}

/// Rounds of reading a spread product again after publishing its level.
const REPUBLISH_ROUNDS: usize = 4;

/// Publishes the current level of every item in `changed`, each once, and (with `events`) their
/// low-stock alerts.
///
/// Never fails as a whole: an item that may succeed later is in [`BroadcastReport::failed`],
/// one refused for good is counted in [`BroadcastReport::refused`], and the others were still
/// published.
pub async fn broadcast_levels<S, P, E>(
    store: &S,
    publisher: &P,
    events: Option<&E>,
    changed: &[ItemKey],
) -> BroadcastReport
where
    S: InventoryStore + LowStockStore,
    P: StockPublisher,
    E: MerchantEvents,
{
    let mut seen = BTreeSet::new();
    let unique: Vec<&ItemKey> = changed.iter().filter(|k| seen.insert(*k)).collect();
    let outcomes: Vec<(&ItemKey, Outcome)> = futures_util::stream::iter(unique)
        .map(|key| async move { (key, broadcast_one(store, publisher, events, key).await) })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut report = BroadcastReport::default();
    for (key, outcome) in outcomes {
        let (store_id, product_id) = key;
        match outcome {
            Outcome::Published { alert_failed } => {
                report.published += 1;
                if let Some(reason) = alert_failed {
                    error!(store_id = %store_id, product_id = %product_id, %reason, "a low-stock alert could not go out: it stays pending for the item's next read");
                    report.alerts_failed += 1;
                }
            }
            Outcome::Gone => report.gone += 1,
            Outcome::Refused(reason) => {
                error!(store_id = %store_id, product_id = %product_id, %reason, "broadcasting a level failed for good: skipped (`stockbridge stock publish` once the cause is fixed)");
                report.refused += 1;
            }
            Outcome::Failed(reason) => {
                warn!(store_id = %store_id, product_id = %product_id, %reason, "broadcasting a level failed; the stream retries it");
                report.failed.push((key.clone(), reason));
            }
        }
    }
    report
}

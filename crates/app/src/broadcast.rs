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
//! - **Nothing lost.** A read or a publish that fails is reported for the item, and the caller
//!   has the batch retried from that item's first record; a deleted item has nothing to show.
//!
//! Link switches stay with the decision that crossed zero ([`crate::effects`]): who switched a
//! link off is known only there (a link the decision finds already off with someone else's
//! message is not stockbridge's), and they are rare (one per sell-out or restock), not per
//! order. They already act on the level at call time, so a late switch never undoes a newer one.

use std::collections::BTreeSet;

use stockbridge_domain::{ProductId, StoreId};
use tracing::warn;

use crate::ports::{InventoryStore, StockPublisher};

/// One item the stream says changed.
pub type ItemKey = (StoreId, ProductId);

/// What a batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BroadcastReport {
    /// Levels published (one per changed item).
    pub published: usize,
    /// Changed items no longer in the table (deleted): nothing to publish.
    pub gone: usize,
    /// Items whose read or publish failed, with the reason: the caller retries them.
    #[serde(skip)]
    pub failed: Vec<(ItemKey, String)>,
}

/// Publishes the current level of every item in `changed`, each once, in the order given.
///
/// Never fails as a whole: an item that failed is in [`BroadcastReport::failed`] and the others
/// were still published.
pub async fn broadcast_levels<S, P>(
    store: &S,
    publisher: &P,
    changed: &[ItemKey],
) -> BroadcastReport
where
    S: InventoryStore,
    P: StockPublisher,
{
    let mut report = BroadcastReport::default();
    let mut seen = BTreeSet::new();
    for key in changed {
        if !seen.insert(key) {
            continue;
        }
        let (store_id, product_id) = key;
        let outcome = match store.item(store_id, product_id).await {
            Ok(Some(item)) => publisher
                .publish(&item.level())
                .await
                .map(|()| true)
                .map_err(|e| e.to_string()),
            Ok(None) => Ok(false),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(true) => report.published += 1,
            Ok(false) => report.gone += 1,
            Err(reason) => {
                warn!(store_id = %store_id, product_id = %product_id, %reason, "broadcasting a level failed; the stream retries it");
                report.failed.push((key.clone(), reason));
            }
        }
    }
    report
}

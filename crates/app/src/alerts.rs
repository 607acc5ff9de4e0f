//! Merchant alerts: `stockbridge.low_stock` when an item's level crosses its threshold downwards,
//! once per crossing ([`stockbridge_domain::low_stock`] has the rule and the hysteresis). Run
//! by the `broadcaster` Lambda for every item it reads from the table's stream.
//!
//! Each step is recorded on the item with a condition on the state read, so two readers of one
//! change alert once. A crossing is recorded as pending *before* its event is published and
//! cleared after: a publish that failed (or a crash in between) leaves it pending, and the next
//! read publishes it again — at least once, never lost, each event with its crossing number so
//! a consumer can drop a repeat.

use serde_json::json;
use stockbridge_domain::low_stock::{LowStock, LowStockStep, step};
use stockbridge_domain::{CatalogItem, StockLevel};

use crate::ports::{LowStockStore, MerchantEvents};

/// The `detail-type` of a low-stock alert.
pub const LOW_STOCK: &str = "stockbridge.low_stock";

/// What a low-stock step did, or why it could not.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// Recording the step failed.
    #[error("recording the low-stock state: {0}")]
    Store(#[from] crate::ports::StoreError),
    /// Publishing the event failed (it stays pending and is published again).
    #[error("publishing stockbridge.low_stock: {0}")]
    Publish(#[from] crate::ports::NotifyError),
}

/// Acts on `item`'s low-stock state for `level` (its level as published). `Ok(Some(n))`: alert
/// `n` was published now.
///
/// # Errors
/// [`AlertError`]: the caller retries the item (a pending alert is published then).
pub async fn watch_low_stock<S, E>(
    store: &S,
    events: &E,
    item: &CatalogItem,
    level: &StockLevel,
) -> Result<Option<u64>, AlertError>
where
    S: LowStockStore,
    E: MerchantEvents,
{
    let Some(state) = item.low_stock else {
        return Ok(None);
    };
    let (store_id, product_id) = (&item.store_id, &item.product_id);
    let pending = match step(&state, level.available) {
        LowStockStep::Hold => return Ok(None),
        LowStockStep::Rearm => {
            let armed = LowStock {
                low: false,
                ..state
            };
            store
                .record_low_stock(store_id, product_id, &state, &armed)
                .await?;
            return Ok(None);
        }
        LowStockStep::Publish { .. } => state,
        LowStockStep::Cross { crossing } => {
            let crossed = LowStock {
                low: true,
                crossings: crossing,
                pending: Some(crossing),
                ..state
            };
            if !store
                .record_low_stock(store_id, product_id, &state, &crossed)
                .await?
            {
                return Ok(None); // another reader recorded it, and alerts
            }
            crossed
        }
    };
    let crossing = pending.pending.unwrap_or(pending.crossings);
    let detail = json!({
        "store_id": store_id.as_str(),
        "product_id": product_id.as_str(),
        "name": item.name,
        "available": level.available,
        "threshold": pending.threshold,
        "crossing": crossing,
        "version": level.version,
    });
    events.publish_event(LOW_STOCK, &detail).await?;
    let published = LowStock {
        pending: None,
        ..pending
    };
    store
        .record_low_stock(store_id, product_id, &pending, &published)
        .await?;
    Ok(Some(crossing))
}

#[cfg(test)]
mod tests;

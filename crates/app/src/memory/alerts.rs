//! In-memory fakes for the merchant's alerts: the low-stock state on items, and the events.

use serde_json::Value;
use stockbridge_domain::low_stock::LowStock;

use super::*;
use crate::ports::{LowStockStore, MerchantEvents, NotifyError};

impl LowStockStore for MemoryStore {
    async fn set_low_stock(
        &self,
        store: &StoreId,
        product: &ProductId,
        threshold: Option<u64>,
    ) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        let Some(item) = state.items.get_mut(&(store.clone(), product.clone())) else {
            return Ok(false);
        };
        if threshold.is_some() && item.low_stock.map(|l| l.threshold) == threshold {
            return Ok(true); // the same threshold again: its state stays
        }
        // As stored: a pending alert and the count of crossings outlive a new threshold (the
        // fake forgets them when the threshold is removed; the table keeps the count).
        let (crossings, pending) = item
            .low_stock
            .map_or((0, None), |l| (l.crossings, l.pending));
        item.low_stock = threshold.map(|threshold| LowStock {
            threshold,
            low: false,
            crossings,
            pending,
        });
        Ok(true)
    }

    async fn record_low_stock(
        &self,
        store: &StoreId,
        product: &ProductId,
        from: &LowStock,
        to: &LowStock,
    ) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        match state.items.get_mut(&(store.clone(), product.clone())) {
            Some(item) if item.low_stock.as_ref() == Some(from) => {
                item.low_stock = Some(*to);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// An event as published: its `detail-type` and `detail`.
pub type PublishedEvent = (String, Value);

/// In-memory [`MerchantEvents`]: every event published, in order; can be told to fail.
#[derive(Debug, Default, Clone)]
pub struct MemoryMerchantEvents(std::sync::Arc<(Mutex<Vec<PublishedEvent>>, AtomicUsize)>);

impl MemoryMerchantEvents {
    /// `(detail_type, detail)` of every event published, in order.
    pub fn published(&self) -> Vec<PublishedEvent> {
        lock(&self.0.0).clone()
    }

    /// The next `n` publishes fail.
    pub fn fail_next(&self, n: usize) {
        self.0.1.store(n, Ordering::SeqCst);
    }
}

impl MerchantEvents for MemoryMerchantEvents {
    async fn publish_event(&self, detail_type: &str, detail: &Value) -> Result<(), NotifyError> {
        if self
            .0
            .1
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(NotifyError("injected failure".into()));
        }
        lock(&self.0.0).push((detail_type.to_owned(), detail.clone()));
        Ok(())
    }
}

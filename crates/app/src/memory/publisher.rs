//! An in-memory stock publisher: what was published, in order.

use super::*;

/// An in-memory [`StockPublisher`] that records every message; can be told to fail.
#[derive(Debug, Default)]
pub struct MemoryPublisherParts {
    /// Published levels in order.
    pub published: Mutex<Vec<StockLevel>>,
    /// While > 0, publishes fail (and decrement it).
    pub fail_next: AtomicUsize,
}

/// An in-memory stock publisher: a cheap-`Clone` handle (clones share one state, like `mini-redis`'s `Db`), so a test
/// keeps one to look inside while the use case holds another.
#[derive(Debug, Default, Clone)]
pub struct MemoryPublisher(std::sync::Arc<MemoryPublisherParts>);

impl std::ops::Deref for MemoryPublisher {
    type Target = MemoryPublisherParts;

    fn deref(&self) -> &MemoryPublisherParts {
        &self.0
    }
}

impl MemoryPublisher {
    /// The latest level per (store, product) by version — what a version-aware client shows.
    pub fn latest(&self) -> HashMap<(StoreId, ProductId), StockLevel> {
        let mut out: HashMap<(StoreId, ProductId), StockLevel> = HashMap::new();
        for l in lock(&self.published).iter() {
            let k = (l.store_id.clone(), l.product_id.clone());
            if out.get(&k).is_none_or(|old| old.version <= l.version) {
                out.insert(k, l.clone());
            }
        }
        out
    }
}

impl StockPublisher for MemoryPublisher {
    async fn publish(&self, level: &StockLevel) -> Result<(), PublishError> {
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(PublishError {
                topic: level.product_id.to_string(),
                retryable: true,
                source: "injected failure".into(),
            });
        }
        lock(&self.published).push(level.clone());
        Ok(())
    }
}

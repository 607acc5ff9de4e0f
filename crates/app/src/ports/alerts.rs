//! What the merchant's alerts need: an item's low-stock state recorded with a condition, and
//! stockbridge's own events for the merchant (`stockbridge.low_stock`, on EventBridge).

use stockbridge_domain::low_stock::LowStock;

use super::*;

/// Items' low-stock thresholds and states.
pub trait LowStockStore: Send + Sync {
    /// Sets an item's threshold (`None`: no alerts), armed; the same threshold again leaves its
    /// state (a re-import must not alert again). `false` when there is no such item.
    fn set_low_stock(
        &self,
        store: &StoreId,
        product: &ProductId,
        threshold: Option<u64>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records `to` if the item's state is still `from` (as read); `false` when it moved (another
    /// reader recorded this step, or the threshold changed): then nothing is written.
    fn record_low_stock(
        &self,
        store: &StoreId,
        product: &ProductId,
        from: &LowStock,
        to: &LowStock,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// stockbridge's events for the merchant (`source` `stockbridge`).
pub trait MerchantEvents: Send + Sync {
    /// Publishes one event of `detail_type` with `detail`.
    fn publish_event(
        &self,
        detail_type: &str,
        detail: &serde_json::Value,
    ) -> impl Future<Output = Result<(), NotifyError>> + Send;
}

/// [`MerchantEvents`] that publishes nothing (commands that must not alert).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMerchantEvents;

impl MerchantEvents for NoMerchantEvents {
    async fn publish_event(
        &self,
        _detail_type: &str,
        _detail: &serde_json::Value,
    ) -> Result<(), NotifyError> {
        Ok(())
    }
}

/// [`MerchantEvents`] as a trait object: for a use case that carries one beside its other ports
/// (the inventory's refunds publish `stockbridge.order_refunded`) without one more type
/// parameter on every use case.
pub trait DynMerchantEvents: Send + Sync {
    /// [`MerchantEvents::publish_event`].
    fn publish_boxed<'a>(
        &'a self,
        detail_type: &'a str,
        detail: &'a serde_json::Value,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + 'a>>;
}

impl<T: MerchantEvents> DynMerchantEvents for T {
    fn publish_boxed<'a>(
        &'a self,
        detail_type: &'a str,
        detail: &'a serde_json::Value,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + 'a>> {
        Box::pin(self.publish_event(detail_type, detail))
    }
}

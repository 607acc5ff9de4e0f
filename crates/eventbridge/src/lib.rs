//! EventBridge adapter: each reconciler run's summary as an event users can route.
//!
//! The event: `source = "stockbridge"`, `detail-type = "stockbridge.reconciliation"`, `detail` =
//! [`RunSummary`] (`discrepancies`, `repaired`, `by_check`, `pipeline_broken`, `findings`, ...),
//! on the bus `RECONCILIATION_EVENT_BUS` (default: the account's `default` bus). A rule such as
//! `{"source": ["stockbridge"], "detail": {"discrepancies": [{"numeric": [">", 0]}]}}` sends
//! only the runs that found something to SNS, e-mail or Slack (see docs/reconciler.md).

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use stockbridge_app::ports::{MerchantEvents, Notifier, NotifyError};
use stockbridge_app::reconcile::RunSummary;

/// The event's `source`.
pub const SOURCE: &str = "stockbridge";
/// The event's `detail-type`.
pub const DETAIL_TYPE: &str = "stockbridge.reconciliation";

/// Publishes summaries with `PutEvents`.
#[derive(Debug, Clone)]
pub struct EventBridgeNotifier {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeNotifier {
    /// A notifier on `bus` (a name or ARN).
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }
}

fn failed(message: String) -> NotifyError {
    NotifyError(message.into())
}

impl EventBridgeNotifier {
    /// One `PutEvents` entry from stockbridge; an entry EventBridge refused is an error.
    async fn put(&self, detail_type: &str, detail: String) -> Result<(), NotifyError> {
        let entry = PutEventsRequestEntry::builder()
            .source(SOURCE)
            .detail_type(detail_type)
            .detail(detail)
            .event_bus_name(&self.bus)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| failed(aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string()))?;
        // PutEvents answers 200 with per-entry failures.
        if out.failed_entry_count() > 0 {
            let why = out
                .entries()
                .iter()
                .filter_map(|e| e.error_message())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(failed(format!("EventBridge refused the event: {why}")));
        }
        Ok(())
    }
}

impl Notifier for EventBridgeNotifier {
    async fn notify(&self, summary: &RunSummary) -> Result<(), NotifyError> {
        let detail = serde_json::to_string(summary).map_err(|e| failed(e.to_string()))?;
        self.put(DETAIL_TYPE, detail).await
    }
}

/// The merchant's alerts (`stockbridge.low_stock`, ...) on the same kind of bus.
impl MerchantEvents for EventBridgeNotifier {
    async fn publish_event(
        &self,
        detail_type: &str,
        detail: &serde_json::Value,
    ) -> Result<(), NotifyError> {
        self.put(detail_type, detail.to_string()).await
    }
}

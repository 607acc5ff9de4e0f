//! Publishing stock levels to storefronts.

use super::*;

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
#[error("publishing to {topic} failed: {source}")]
pub struct PublishError {
    /// The topic.
    pub topic: String,
    /// Whether the same publish may succeed later (throttling, a 5xx, the network); `false`
    /// when IoT refused it for good (a 4xx: not authorised, too large).
    pub retryable: bool,
    /// The cause.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Publishes stock levels to storefronts.
pub trait StockPublisher: Send + Sync {
    /// Publishes one level (retained, QoS 1) on its stock topic.
    fn publish(&self, level: &StockLevel) -> impl Future<Output = Result<(), PublishError>> + Send;
}

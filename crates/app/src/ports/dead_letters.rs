//! Setting aside a queue message that can never succeed, with its reason.

use super::*;

/// Why a message could not be set aside.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// No dead-letter queue is configured (`CATALOG_SYNC_DLQ_URL`).
    #[error("no dead-letter queue is configured (CATALOG_SYNC_DLQ_URL)")]
    NotConfigured,
    /// Sending it failed.
    #[error("sending to the dead-letter queue failed: {0}")]
    Failed(String),
}

/// A dead-letter queue that takes a message with the reason it can never succeed.
pub trait DeadLetters: Send + Sync {
    /// Sends `body` (the message as received, `message_id` its id) with `reason`.
    fn dead_letter(
        &self,
        message_id: &str,
        body: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), DeadLetterError>> + Send;
}

//! An in-memory dead-letter queue: what was set aside, in order.

use super::*;
use crate::ports::{DeadLetterError, DeadLetters};

/// An in-memory [`DeadLetters`] that records every message; can be told to fail.
#[derive(Debug, Default)]
pub struct MemoryDeadLetters {
    /// `(message_id, body, reason)` in order.
    pub sent: Mutex<Vec<(String, String, String)>>,
    /// While > 0, sends fail (and decrement it).
    pub fail_next: AtomicUsize,
}

impl DeadLetters for MemoryDeadLetters {
    async fn dead_letter(
        &self,
        message_id: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), DeadLetterError> {
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(DeadLetterError::Failed("injected failure".into()));
        }
        lock(&self.sent).push((message_id.into(), body.into(), reason.into()));
        Ok(())
    }
}

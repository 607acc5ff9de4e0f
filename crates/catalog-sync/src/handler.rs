//! The catalog-sync function's edge: an SQS batch in, `batchItemFailures` out.
//!
//! Only messages that may succeed later are reported back and retried by SQS (after the
//! queue's `maxReceiveCount` they move to the dead-letter queue). A message that can never
//! succeed (malformed, or refused by Stripe) is set aside at once with its reason
//! ([`DeadLetters`]) and deleted from the queue; if that fails it is reported back, so the
//! queue's redrive still moves it. The batch stops before the invocation's deadline and hands
//! back what it did not reach: a timed-out invocation would fail every message of the batch,
//! and syncs are idempotent, so one cut short is simply redone.

use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{Diagnostic, LambdaEvent};
use stockbridge_app::catalog_sync::{CatalogSync, MessageError};
use stockbridge_app::decode::EventFilter;
use stockbridge_app::ports::{
    CatalogStore, Clock, DeadLetters, InventoryStore, Payments, ReconciliationLog, StripeCatalog,
};

/// Time kept in hand before the invocation's deadline to answer with the partial result.
const DEADLINE_MARGIN: Duration = Duration::from_millis(1500);

/// Syncs every message of the batch; returns the ones to retry.
///
/// # Errors
/// Never: every failure is per message.
pub async fn handle<S, K, C, D>(
    sync: &CatalogSync<S, K, C>,
    filter: &EventFilter,
    dead_letters: &D,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Diagnostic>
where
    S: CatalogStore + InventoryStore + ReconciliationLog,
    K: StripeCatalog + Payments,
    C: Clock,
    D: DeadLetters,
{
    let deadline = std::time::UNIX_EPOCH + Duration::from_millis(event.context.deadline);
    let mut response = SqsBatchResponse::default();
    for record in event.payload.records {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.as_deref().unwrap_or_default();
        let left = deadline
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
            .saturating_sub(DEADLINE_MARGIN);
        let retry = if left.is_zero() {
            tracing::warn!(message_id = %id, "no time left in this invocation: handed back for a retry");
            true
        } else {
            match tokio::time::timeout(left, sync.handle_message(body, filter)).await {
                Ok(Ok(_)) => false,
                Ok(Err(MessageError::Retry(e))) => {
                    tracing::warn!(message_id = %id, error = %e, "catalog sync failed: will be retried");
                    true
                }
                Ok(Err(MessageError::Poison(reason))) => {
                    match dead_letters.dead_letter(&id, body, &reason).await {
                        Ok(()) => {
                            tracing::error!(message_id = %id, %reason, "poison message moved to the dead-letter queue");
                            false
                        }
                        Err(e) => {
                            tracing::error!(message_id = %id, %reason, error = %e, "could not dead-letter: left for the queue's redrive");
                            true
                        }
                    }
                }
                Err(_) => {
                    tracing::warn!(message_id = %id, "sync cut short by the invocation's deadline: will be retried");
                    true
                }
            }
        };
        if retry {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests;

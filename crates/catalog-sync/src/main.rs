//! The `catalog-sync` Lambda: SQS batches from the catalog-sync queue (catalog changes from the
//! table stream through an EventBridge Pipe, and Stripe `product.*` / `price.*` /
//! `payment_link.*` events through an EventBridge rule) to Stripe.
//!
//! Partial batch failures: only messages that may succeed later are reported back
//! (`batchItemFailures`) and retried by SQS; after the queue's `maxReceiveCount` they move to
//! the dead-letter queue. A message that can never succeed (malformed, or refused by Stripe) is
//! sent to the dead-letter queue at once with its reason as the message attribute `reason`, and
//! deleted from the queue. All logic lives in `stockbridge-app`.

use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::MessageAttributeValue;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use stockbridge_app::catalog::MessageError;
use stockbridge_bootstrap::{Config, LiveCatalogSync};

/// Time kept in hand before the invocation's deadline to answer with the partial result.
const DEADLINE_MARGIN: Duration = Duration::from_millis(1500);

struct Function {
    sync: LiveCatalogSync,
    filter: stockbridge_app::events::EventFilter,
    sqs: aws_sdk_sqs::Client,
    dlq_url: Option<String>,
}

impl Function {
    /// Sends a poison message to the DLQ with its reason. Returns whether it is safe to delete.
    async fn dead_letter(&self, message_id: &str, body: &str, reason: &str) -> bool {
        let Some(url) = &self.dlq_url else {
            tracing::error!(
                message_id,
                reason,
                "poison message and CATALOG_SYNC_DLQ_URL is not set: left for the queue's redrive"
            );
            return false;
        };
        let attr = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
        };
        let (Ok(reason_attr), Ok(id_attr)) = (attr(reason), attr(message_id)) else {
            return false;
        };
        match self
            .sqs
            .send_message()
            .queue_url(url)
            .message_body(body)
            .message_attributes("reason", reason_attr)
            .message_attributes("source_message_id", id_attr)
            .send()
            .await
        {
            Ok(_) => {
                tracing::error!(
                    message_id,
                    reason,
                    "poison message moved to the dead-letter queue"
                );
                true
            }
            Err(e) => {
                tracing::error!(message_id, reason, error = %aws_sdk_sqs::error::DisplayErrorContext(e), "could not dead-letter: left for the queue's redrive");
                false
            }
        }
    }

    async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
        // Stop before the invocation's deadline and hand back what was not done: a timed-out
        // invocation would fail the whole batch, and after maxReceiveCount send good messages to
        // the DLQ. Syncs are idempotent, so one cut short is simply redone.
        let deadline = std::time::UNIX_EPOCH + Duration::from_millis(event.context.deadline);
        let mut failures = Vec::new();
        for record in event.payload.records {
            let id = record.message_id.clone().unwrap_or_default();
            let body = record.body.as_deref().unwrap_or_default();
            let left = deadline
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
                .saturating_sub(DEADLINE_MARGIN);
            let failed = if left.is_zero() {
                tracing::warn!(message_id = %id, "no time left in this invocation: handed back for a retry");
                true
            } else {
                match tokio::time::timeout(left, self.sync.handle_message(body, &self.filter)).await
                {
                    Ok(Ok(_)) => false,
                    Ok(Err(MessageError::Retry(e))) => {
                        tracing::warn!(message_id = %id, error = %e, "catalog sync failed: will be retried");
                        true
                    }
                    Ok(Err(MessageError::Poison(reason))) => {
                        !self.dead_letter(&id, body, &reason).await
                    }
                    Err(_) => {
                        tracing::warn!(message_id = %id, "sync cut short by the invocation's deadline: will be retried");
                        true
                    }
                }
            };
            if failed {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failures.push(failure);
            }
        }
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures;
        Ok(response)
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sync = stockbridge_bootstrap::catalog_sync(&config).await?;
    let function = Function {
        sync,
        filter: config.event_filter(),
        sqs: aws_sdk_sqs::Client::new(&stockbridge_bootstrap::aws_config().await),
        dlq_url: std::env::var("CATALOG_SYNC_DLQ_URL")
            .ok()
            .filter(|v| !v.is_empty()),
    };
    let function = &function;
    lambda_runtime::run(service_fn(move |event| function.handle(event))).await
}

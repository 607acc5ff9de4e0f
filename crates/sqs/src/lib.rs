//! SQS adapter: a message that can never succeed goes to the dead-letter queue with its
//! reason (message attributes `reason` and `source_message_id`) and the original body, so a
//! person can read why and redrive it once the cause is fixed.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;
use stockbridge_app::ports::{DeadLetterError, DeadLetters};

/// The catalog-sync dead-letter queue (`CATALOG_SYNC_DLQ_URL`).
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: Client,
    url: Option<String>,
}

impl SqsDeadLetters {
    /// The queue at `url`; `None`: none configured (every send is refused, the message stays
    /// in its queue for the redrive policy).
    pub fn new(client: Client, url: Option<String>) -> Self {
        Self { client, url }
    }
}

fn attribute(value: &str) -> Result<MessageAttributeValue, DeadLetterError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| DeadLetterError::Failed(e.to_string()))
}

impl DeadLetters for SqsDeadLetters {
    async fn dead_letter(
        &self,
        message_id: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), DeadLetterError> {
        let url = self.url.as_ref().ok_or(DeadLetterError::NotConfigured)?;
        let mut send = self
            .client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .message_attributes("reason", attribute(reason)?);
        // SQS refuses an empty attribute value: a message without an id goes without it.
        if !message_id.is_empty() {
            send = send.message_attributes("source_message_id", attribute(message_id)?);
        }
        send.send().await.map_err(|e| {
            DeadLetterError::Failed(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
        })?;
        Ok(())
    }
}

/// The catalog-sync queue (`CATALOG_SYNC_QUEUE_URL`), for catalog events that arrive by webhook.
#[derive(Debug, Clone)]
pub struct SqsCatalogQueue {
    client: Client,
    url: Option<String>,
}

impl SqsCatalogQueue {
    /// The queue at `url`; `None`: none configured (every send fails, so the webhook answers
    /// 500 and Stripe delivers the event again once it is set).
    pub fn new(client: Client, url: Option<String>) -> Self {
        Self { client, url }
    }
}

impl stockbridge_app::ports::CatalogQueue for SqsCatalogQueue {
    async fn send(&self, body: &str) -> Result<(), stockbridge_app::ports::StoreError> {
        use stockbridge_app::ports::StoreError;
        let url = self
            .url
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("CATALOG_SYNC_QUEUE_URL is not set".into()))?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| {
                StoreError::Unavailable(
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                        .to_string()
                        .into(),
                )
            })?;
        Ok(())
    }
}

//! AWS IoT Core data-plane adapter: publishes stock levels as retained QoS 1 messages on
//! `{prefix}/{store_id}/products/{product_id}/stock` (see `stockbridge_app::message`).
//!
//! The endpoint comes from the SDK's standard configuration (`AWS_ENDPOINT_URL_IOT_DATA_PLANE`
//! = `https://<id>-ats.iot.<region>.amazonaws.com` in AWS; the local bridge in tests).

mod claim;

pub use claim::{Claim, ClaimError};

use aws_sdk_iotdataplane::Client;
use aws_sdk_iotdataplane::primitives::Blob;
use stockbridge_app::message::{stock_payload, stock_topic};
use stockbridge_app::ports::{PublishError, StockPublisher};
use stockbridge_domain::StockLevel;

/// Publishes stock levels to IoT Core.
#[derive(Debug, Clone)]
pub struct IotPublisher {
    client: Client,
    prefix: String,
    publishing: bool,
}

impl IotPublisher {
    /// A publisher on topics under `prefix`.
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
            publishing: true,
        }
    }

    /// `false`: publishes nothing, because the `broadcaster` Lambda publishes every level from
    /// the table's stream (`STOCK_LEVELS_FROM_STREAM`); one publisher per item keeps the
    /// retained message in version order.
    #[must_use]
    pub fn publishing(self, publishing: bool) -> Self {
        Self { publishing, ..self }
    }
}

/// Whether a publish answered with `status` (`None`: no answer, a timeout or the network) may
/// succeed later. Only a message IoT refuses as such (400 bad request, 413 too large) never
/// will: a 401/403/404 is the deployment's (a permission still propagating, a wrong endpoint),
/// so the stream keeps it and the alarms on its age and its failed batches fire.
fn retryable(status: Option<u16>) -> bool {
    !matches!(status, Some(400 | 413))
}

impl StockPublisher for IotPublisher {
    async fn publish(&self, level: &StockLevel) -> Result<(), PublishError> {
        if !self.publishing {
            return Ok(());
        }
        let topic = stock_topic(&self.prefix, &level.store_id, &level.product_id);
        self.client
            .publish()
            .topic(&topic)
            .qos(1)
            .retain(true)
            .payload(Blob::new(stock_payload(level)))
            .send()
            .await
            .map_err(|e| {
                let status = e.raw_response().map(|r| r.status().as_u16());
                PublishError {
                    topic: topic.clone(),
                    retryable: retryable(status),
                    source: Box::new(std::io::Error::other(
                        aws_sdk_iotdataplane::error::DisplayErrorContext(e).to_string(),
                    )),
                }
            })?;
        tracing::debug!(
            topic,
            available = level.available,
            version = level.version,
            "stock published"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::retryable;

    #[test]
    fn only_a_message_iot_refuses_as_such_is_never_retried() {
        for status in [400, 413] {
            assert!(!retryable(Some(status)), "{status}");
        }
        for status in [401, 403, 404, 429, 500, 503] {
            assert!(retryable(Some(status)), "{status}");
        }
        assert!(retryable(None), "no answer: a timeout or the network");
    }
}

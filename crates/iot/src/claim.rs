//! Which deployment a topic prefix belongs to: the retained message `{prefix}/_deployment`
//! (`{"table": "<the deployment's table>"}`).
//!
//! Two stacks in one account and region that share `IotTopicPrefix` overwrite each other's
//! retained stock messages. The first deployment to look claims the prefix; every later look
//! (the reconciler's every run, `stockbridge preflight`) compares the claim with its own table,
//! so a second stack on the same prefix is found by both. The storefront's guests may read only
//! the stock topics, never this one.

use aws_sdk_iotdataplane::primitives::Blob;

use crate::IotPublisher;

/// What the claim says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The prefix is this deployment's (claimed before).
    Ours,
    /// Nobody had claimed it: now this deployment has.
    ClaimedNow,
    /// Another deployment's table holds it.
    Other(String),
    /// Nobody has, and `claim_prefix` was asked only to look.
    Free,
}

/// Why the claim could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("the topic-prefix claim {topic}: {message}")]
pub struct ClaimError {
    /// The claim's topic.
    pub topic: String,
    /// What failed.
    pub message: String,
}

impl IotPublisher {
    /// The claim's topic.
    pub fn claim_topic(&self) -> String {
        format!("{}/_deployment", self.prefix)
    }

    /// Compares the prefix's claim with `table`; claims it for `table` when nobody has (with
    /// `table` empty, only looks).
    ///
    /// # Errors
    /// [`ClaimError`] when the claim cannot be read or written.
    pub async fn claim_prefix(&self, table: &str) -> Result<Claim, ClaimError> {
        let topic = self.claim_topic();
        let failed = |message: String| ClaimError {
            topic: topic.clone(),
            message,
        };
        let held = match self
            .client
            .get_retained_message()
            .topic(&topic)
            .send()
            .await
        {
            Ok(m) => m
                .payload()
                .and_then(|p| serde_json::from_slice::<serde_json::Value>(p.as_ref()).ok())
                .and_then(|v| v["table"].as_str().map(str::to_owned)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(e) => {
                return Err(failed(
                    aws_sdk_iotdataplane::error::DisplayErrorContext(e).to_string(),
                ));
            }
        };
        match held {
            Some(other) if other != table => Ok(Claim::Other(other)),
            Some(_) => Ok(Claim::Ours),
            None if table.is_empty() => Ok(Claim::Free),
            None => {
                let body = serde_json::json!({ "table": table }).to_string();
                self.client
                    .publish()
                    .topic(&topic)
                    .qos(1)
                    .retain(true)
                    .payload(Blob::new(body))
                    .send()
                    .await
                    .map_err(|e| {
                        failed(aws_sdk_iotdataplane::error::DisplayErrorContext(e).to_string())
                    })?;
                Ok(Claim::ClaimedNow)
            }
        }
    }
}

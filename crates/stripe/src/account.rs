//! What `stockbridge preflight` asks Stripe about the account: what the key may do, and the
//! event destinations that feed the deployment.
//!
//! Permissions: Stripe has no API that lists a restricted key's permissions, but it refuses a
//! request the key may not make with 403 before it looks at the parameters, naming the
//! permission. So each permission stockbridge needs is probed with a request that cannot change
//! anything: a one-item list for read, a create with no parameters for write (Stripe refuses it
//! with 400 for a missing parameter once the permission is there). That Stripe checks the
//! permission before the parameters is what its errors show; it is not documented.
//!
//! Event destinations are a v2 API that async-stripe has no types for: they are read through
//! [`crate::transport::Transport::raw`] and decoded here, tolerantly (unknown fields ignored).

use stripe_client_core::StripeMethod;

use crate::StripePayments;
use crate::transport::TransportError;

/// One permission stockbridge needs, as the Dashboard's restricted-key form names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// The resource, as named on the form (`Checkout Sessions`).
    pub resource: &'static str,
    /// `Read` or `Write`.
    pub access: &'static str,
    /// The request that shows it: `(method, path)` under the API base.
    pub probe: (&'static str, &'static str),
}

/// Every permission the deployment's key needs: docs/deploy.md step 1 lists the same (a test
/// holds them equal).
pub const PERMISSIONS: &[Permission] = &[
    Permission {
        resource: "Checkout Sessions",
        access: "Read",
        probe: ("GET", "v1/checkout/sessions?limit=1"),
    },
    Permission {
        resource: "Payment Links",
        access: "Write",
        probe: ("POST", "v1/payment_links"),
    },
    Permission {
        resource: "Refunds",
        access: "Write",
        probe: ("POST", "v1/refunds"),
    },
    Permission {
        resource: "PaymentIntents",
        access: "Write",
        probe: ("POST", "v1/payment_intents"),
    },
    Permission {
        resource: "Products",
        access: "Write",
        probe: ("POST", "v1/products"),
    },
    Permission {
        resource: "Prices",
        access: "Write",
        probe: ("POST", "v1/prices"),
    },
    Permission {
        resource: "Events",
        access: "Read",
        probe: ("GET", "v1/events?limit=1"),
    },
    Permission {
        resource: "Charges",
        access: "Read",
        probe: ("GET", "v1/charges?limit=1"),
    },
    Permission {
        resource: "Disputes",
        access: "Read",
        probe: ("GET", "v1/disputes?limit=1"),
    },
];

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// The key may (the request ran, or was refused only for its missing parameters).
    Granted,
    /// Stripe refused the key: its message (naming the permission, never the whole key).
    Refused(String),
    /// No answer that tells (Stripe unavailable, rate limited): the error.
    Unknown(String),
}

/// An event destination (`v2.core.event_destination`), the fields the preflight reads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct EventDestination {
    /// `ed_...`.
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// `amazon_eventbridge` or `webhook_endpoint`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `enabled` or `disabled`.
    pub status: String,
    /// The event types it sends.
    #[serde(default)]
    pub enabled_events: Vec<String>,
    /// `snapshot` or `thin`.
    pub event_payload: String,
    /// The API version snapshot events are rendered in.
    #[serde(default)]
    pub snapshot_api_version: Option<String>,
    /// Live or test mode.
    pub livemode: bool,
    /// EventBridge settings, for an EventBridge destination.
    #[serde(default)]
    pub amazon_eventbridge: Option<AmazonEventBridge>,
}

/// Where an EventBridge destination delivers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct AmazonEventBridge {
    /// The AWS account.
    pub aws_account_id: String,
    /// `arn:aws:events:{region}::event-source/aws.partner/stripe.com/{id}`.
    pub aws_event_source_arn: String,
    /// `active`, `pending`, `deleted` or `unknown`.
    pub aws_event_source_status: String,
}

impl AmazonEventBridge {
    /// The partner event source's name (`aws.partner/stripe.com/...`) and region.
    pub fn source(&self) -> Option<(&str, &str)> {
        let rest = self.aws_event_source_arn.strip_prefix("arn:")?;
        let mut parts = rest.splitn(5, ':');
        let (_partition, _service, region, _account) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let name = parts.next()?.strip_prefix("event-source/")?;
        Some((name, region))
    }
}

#[derive(serde::Deserialize)]
struct DestinationList {
    data: Vec<EventDestination>,
}

impl StripePayments {
    /// Whether the key has `permission`, by its probe.
    pub async fn probe(&self, permission: &Permission) -> Access {
        let (method, path) = permission.probe;
        let method = if method == "POST" {
            StripeMethod::Post
        } else {
            StripeMethod::Get
        };
        match self.client.raw(method, path).await {
            Ok(_) => Access::Granted,
            Err(TransportError::Api {
                status, message, ..
            }) => match status {
                // Refused for the parameters it lacks (or no such object): past the permission.
                400 | 404 => Access::Granted,
                401 | 403 => Access::Refused(message),
                _ => Access::Unknown(format!("HTTP {status}: {message}")),
            },
            Err(e) => Access::Unknown(e.to_string()),
        }
    }

    /// The account's event destinations in the key's mode.
    ///
    /// # Errors
    /// The transport's error (a 403 when the key may not read them).
    pub async fn event_destinations(&self) -> Result<Vec<EventDestination>, TransportError> {
        let bytes = self
            .client
            .raw(StripeMethod::Get, "v2/core/event_destinations?limit=100")
            .await?;
        let list: DestinationList =
            serde_json::from_slice(&bytes).map_err(|e| TransportError::Decode(e.to_string()))?;
        Ok(list.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_destination_decodes_tolerantly_and_names_its_partner_source() {
        let d: EventDestination = serde_json::from_value(serde_json::json!({
            "id": "ed_test_1", "object": "v2.core.event_destination", "type": "amazon_eventbridge",
            "status": "enabled", "enabled_events": ["checkout.session.completed"],
            "event_payload": "snapshot", "snapshot_api_version": "2025-01-27.acacia",
            "livemode": false, "something_new": {"x": 1},
            "amazon_eventbridge": {"aws_account_id": "111122223333",
                "aws_event_source_arn": "arn:aws:events:eu-west-1::event-source/aws.partner/stripe.com/ed_test_1",
                "aws_event_source_status": "pending"}
        }))
        .unwrap();
        let eb = d.amazon_eventbridge.unwrap();
        assert_eq!(
            eb.source(),
            Some(("aws.partner/stripe.com/ed_test_1", "eu-west-1"))
        );
        assert_eq!(d.name, "");
    }

    #[test]
    fn every_probe_is_a_read_or_a_create_without_parameters() {
        for p in PERMISSIONS {
            match (p.access, p.probe.0) {
                ("Read", "GET") => assert!(p.probe.1.ends_with("?limit=1"), "{p:?}"),
                // `v1/{resource}`: a create, never an object's path.
                ("Write", "POST") => {
                    assert!(
                        p.probe.1.matches('/').count() == 1 && !p.probe.1.contains('?'),
                        "{p:?}"
                    );
                }
                _ => panic!("{p:?}"),
            }
        }
    }
}

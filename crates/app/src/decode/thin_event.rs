//! Thin events (Stripe's API v2 "event notifications"): `{"object": "v2.core.event", "id",
//! "type", "created", "livemode", "context", "related_object": {"id", "type", "url"}}` and no
//! snapshot. They are unversioned, so only these fields are read and anything else is ignored.
//! A thin event about a v1 resource has the v1 type with a `v1.` prefix
//! (`v1.checkout.session.completed`); its object is read back from Stripe
//! (`crate::inbound`).

use serde_json::Value;

use super::DecodeError;

/// The `object` of a thin event.
pub const THIN_OBJECT: &str = "v2.core.event";
/// Stripe's test of a destination: answered as healthy, nothing else.
pub const PING: &str = "v2.core.event_destination.ping";
/// Stripe failed to generate an event about an object, and says so once resolved.
pub const GENERATION_FAILURE_RESOLVED: &str = "v2.core.health.event_generation_failure.resolved";

/// A thin event, as delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThinEvent {
    /// `evt_…`.
    pub id: String,
    /// `v1.checkout.session.completed`, `v2.core.event_destination.ping`, …
    pub event_type: String,
    /// When Stripe created it (Unix seconds; Stripe sends an RFC 3339 time).
    pub created: i64,
    /// Absent in a few v2 events: then taken as the deployment's.
    pub livemode: Option<bool>,
    /// The object it is about, if any.
    pub related: Option<RelatedObject>,
}

/// A thin event's `related_object`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelatedObject {
    /// `cs_…`, `pi_…`, `prod_…`.
    pub id: String,
    /// `checkout.session`, `payment_intent`, `product`, …
    pub kind: String,
}

impl ThinEvent {
    /// The v1 event type it stands for (`v1.checkout.session.completed` ->
    /// `checkout.session.completed`), for a thin event about a v1 resource.
    pub fn v1_type(&self) -> Option<&str> {
        self.event_type.strip_prefix("v1.")
    }
}

/// Whether a Stripe event (the body of a webhook, an EventBridge `detail`) is thin.
pub fn is_thin(event: &Value) -> bool {
    event.get("object").and_then(Value::as_str) == Some(THIN_OBJECT)
}

/// Decodes a thin event found at `at` (for error messages).
///
/// # Errors
/// [`DecodeError`] naming the field when `id`, `type` or `created` is missing or unusable, or
/// `related_object` has no `id` / `type`.
pub fn decode_thin(event: &Value, at: &str) -> Result<ThinEvent, DecodeError> {
    let bad = |field: &str, message: &str| DecodeError {
        field: format!("{at}.{field}"),
        message: message.to_owned(),
    };
    let text = |field: &str| {
        event
            .get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad(field, "missing or not a string"))
    };
    let id = text("id")?.to_owned();
    let event_type = text("type")?.to_owned();
    let created = match event.get("created") {
        Some(Value::String(s)) => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|e| bad("created", &format!("not an RFC 3339 time: {e}")))?
                .unix_timestamp()
        }
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| bad("created", "not a whole number"))?,
        _ => return Err(bad("created", "missing")),
    };
    let related = match event.get("related_object") {
        None | Some(Value::Null) => None,
        Some(o) => {
            let field = |f: &str| {
                o.get(f)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| bad(&format!("related_object.{f}"), "missing"))
            };
            Some(RelatedObject {
                id: field("id")?,
                kind: field("type")?,
            })
        }
    };
    Ok(ThinEvent {
        id,
        event_type,
        created,
        livemode: event.get("livemode").and_then(Value::as_bool),
        related,
    })
}

#[cfg(test)]
mod tests;

//! Decoding Stripe snapshot events delivered by a Stripe Event Destination to EventBridge.
//!
//! Only the fields stockbridge uses are read, tolerantly: unknown fields, unknown event types and
//! API-version differences in fields we don't read are normal. A missing or mistyped field we do
//! read is an error that names the field (`detail.data.object.id: missing field `id``).

use std::collections::HashMap;

use super::after_sale::{CHARGE_REFUNDED, DISPUTE_CLOSED, decode_after_sale};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::Deserialize;
use serde_json::Value;
use stockbridge_domain::{
    IdError, OrderId, PaidAt, PaymentIntentId, PaymentLinkId, StoreId, StripeEventId, Timestamp,
};

/// `checkout.session.completed`.
pub const CHECKOUT_COMPLETED: &str = "checkout.session.completed";
/// `checkout.session.async_payment_succeeded`.
pub const ASYNC_PAYMENT_SUCCEEDED: &str = "checkout.session.async_payment_succeeded";
/// `checkout.session.async_payment_failed`.
pub const ASYNC_PAYMENT_FAILED: &str = "checkout.session.async_payment_failed";

/// `payment_intent.amount_capturable_updated`: a checkout hold's payment was authorised.
pub const INTENT_AUTHORIZED: &str = "payment_intent.amount_capturable_updated";
/// `payment_intent.payment_failed`.
pub const INTENT_FAILED: &str = "payment_intent.payment_failed";
/// `payment_intent.canceled`.
pub const INTENT_CANCELED: &str = "payment_intent.canceled";

/// The Stripe event types the inventory function handles (and the reconciler replays).
pub const HANDLED_EVENT_TYPES: [&str; 8] = [
    CHECKOUT_COMPLETED,
    ASYNC_PAYMENT_SUCCEEDED,
    ASYNC_PAYMENT_FAILED,
    INTENT_AUTHORIZED,
    INTENT_FAILED,
    INTENT_CANCELED,
    CHARGE_REFUNDED,
    DISPUTE_CLOSED,
];

/// The Stripe event types that send a product to the catalog sync (routed to its queue by an
/// EventBridge rule).
pub const CATALOG_EVENT_TYPES: [&str; 6] = [
    "product.created",
    "product.updated",
    "price.created",
    "price.updated",
    "payment_link.created",
    "payment_link.updated",
];

/// Every event type a deployment's Stripe Event Destination must send, in the order the README
/// and docs/deploy.md list them (a test holds both to it).
pub fn subscribed_event_types() -> Vec<&'static str> {
    HANDLED_EVENT_TYPES
        .iter()
        .chain(CATALOG_EVENT_TYPES.iter())
        .copied()
        .collect()
}

/// The same types as a thin event destination names them (`v1.checkout.session.completed`, ...),
/// in the same order (the EventBridge rules route both forms).
pub fn thin_event_types() -> Vec<String> {
    subscribed_event_types()
        .into_iter()
        .map(|t| format!("v1.{t}"))
        .collect()
}

/// Which events to accept.
#[derive(Debug, Clone)]
pub struct EventFilter {
    /// Accepted `source` prefix (default `aws.partner/stripe.com/`).
    pub source_prefix: String,
    /// Whether live-mode events are expected (test-mode otherwise).
    pub livemode: bool,
}

/// A malformed event: names the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed event: field `{field}`: {message}")]
pub struct DecodeError {
    /// Dotted path of the field (`detail.data.object.id`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Why an event was refused without effect or retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `source` does not start with the configured prefix.
    ForeignSource {
        /// The source.
        source: String,
    },
    /// The event's `livemode` differs from the configuration.
    LivemodeMismatch {
        /// The event's livemode.
        event: bool,
        /// The configured livemode.
        configured: bool,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ForeignSource { source } => write!(
                f,
                "event source {source:?} is not a configured Stripe source"
            ),
            Self::LivemodeMismatch { event, configured } => {
                write!(
                    f,
                    "event livemode={event} but this deployment expects livemode={configured}"
                )
            }
        }
    }
}

/// Which checkout event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutKind {
    /// `checkout.session.completed`.
    Completed,
    /// `checkout.session.async_payment_succeeded`.
    AsyncPaymentSucceeded,
    /// `checkout.session.async_payment_failed`.
    AsyncPaymentFailed,
}

/// A session's `payment_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionPaymentStatus {
    /// `paid`.
    Paid,
    /// `unpaid`: a delayed payment method.
    Unpaid,
    /// `no_payment_required`: treated as paid (the goods are given).
    NoPaymentRequired,
}

/// The fields of a Checkout Session stockbridge uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    /// `id`.
    pub id: OrderId,
    /// `payment_status`.
    pub payment_status: SessionPaymentStatus,
    /// `payment_intent`.
    pub payment_intent: Option<PaymentIntentId>,
    /// `payment_link`.
    pub payment_link: Option<PaymentLinkId>,
    /// `metadata.store_id`, validated.
    pub store_id: Option<StoreId>,
    /// `currency` (lower-case ISO 4217), when present.
    pub currency: Option<String>,
    /// `amount_subtotal`: the total before discounts, taxes and shipping, minor units. With a
    /// link stockbridge made, it gives the order without listing line items
    /// (`stockbridge_domain::LinkTerms`).
    pub amount_subtotal: Option<u64>,
}

/// A checkout event, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutEvent {
    /// Which one.
    pub kind: CheckoutKind,
    /// The Stripe event id (`detail.id`), never the envelope's.
    pub event_id: StripeEventId,
    /// The session.
    pub session: CheckoutSession,
    /// The event's `created` (Unix seconds): when Stripe recorded the completion or the cleared
    /// payment.
    pub created: i64,
    /// When the order was paid, as far as the event tells: the end of its `created` second
    /// (Stripe gives whole seconds, so a payment in the same second as an item's management
    /// boundary counts as a sale, never as history). Compared with each item's boundary, so
    /// history from before stockbridge never moves stock.
    pub paid_at: PaidAt,
}

/// What an envelope turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Refused: wrong source or livemode. Logged, no effect, no retry.
    Refused {
        /// The Stripe event id, if it could be read.
        event_id: Option<String>,
        /// Why.
        refusal: Refusal,
    },
    /// An event type stockbridge does not handle.
    Ignored {
        /// The Stripe event id.
        event_id: String,
        /// Its type.
        event_type: String,
    },
    /// A checkout event to apply.
    Checkout(CheckoutEvent),
    /// A PaymentIntent event of a checkout-API hold.
    Intent(IntentEvent),
    /// A refund or a closed dispute (`charge.refunded`, `charge.dispute.closed`).
    AfterSale(super::after_sale::AfterSaleEvent),
}

/// What happened to a hold's PaymentIntent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentKind {
    /// Authorised: capturable.
    Authorized,
    /// A payment attempt failed.
    Failed,
    /// Cancelled.
    Canceled,
}

/// A PaymentIntent event that names a hold (`metadata.hold_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentEvent {
    /// Which.
    pub kind: IntentKind,
    /// The Stripe event.
    pub event_id: StripeEventId,
    /// The PaymentIntent.
    pub payment_intent: PaymentIntentId,
    /// The hold it pays for.
    pub hold_id: OrderId,
}

#[derive(Deserialize)]
struct IntentObject {
    id: String,
    #[serde(default)]
    metadata: Option<HashMap<String, Value>>,
}

#[derive(Deserialize)]
struct EventHead {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    livemode: bool,
    created: i64,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
struct EventData {
    object: SessionObject,
}

/// Stripe renders an expandable field as an id or as the object.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum IdOrObject {
    Id(String),
    Object { id: String },
}

impl IdOrObject {
    pub(super) fn id(self) -> String {
        match self {
            Self::Id(id) | Self::Object { id } => id,
        }
    }
}

#[derive(Deserialize)]
struct SessionObject {
    id: String,
    payment_status: String,
    #[serde(default)]
    payment_intent: Option<IdOrObject>,
    #[serde(default)]
    payment_link: Option<IdOrObject>,
    #[serde(default)]
    metadata: Option<HashMap<String, Value>>,
    // Only an optimisation: a value of another shape is ignored (the line items are listed),
    // never a reason to refuse a paid order.
    #[serde(default)]
    currency: Option<Value>,
    #[serde(default)]
    amount_subtotal: Option<Value>,
}

pub(super) fn decode_at<T: serde::de::DeserializeOwned>(
    prefix: &str,
    value: &Value,
) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let field = match (prefix.is_empty(), inner == ".") {
            (true, _) => inner,
            (false, true) => prefix.to_owned(),
            (false, false) => format!("{prefix}.{inner}"),
        };
        DecodeError {
            field,
            message: e.into_inner().to_string(),
        }
    })
}

pub(super) fn id<T>(
    field: &str,
    value: String,
    parse: impl FnOnce(String) -> Result<T, IdError>,
) -> Result<T, DecodeError> {
    parse(value).map_err(|e| DecodeError {
        field: field.to_owned(),
        message: e.to_string(),
    })
}

/// Decodes an EventBridge envelope carrying a Stripe snapshot event.
///
/// # Errors
/// [`DecodeError`] naming the field when a field stockbridge reads is missing or invalid.
pub fn decode(raw: &Value, filter: &EventFilter) -> Result<Decoded, DecodeError> {
    let envelope: EventBridgeEvent<Value> = decode_at("", raw)?;
    if let Some(refused) = foreign_source(&envelope.source, &envelope.detail, filter) {
        return Ok(refused);
    }
    decode_event(&envelope.detail, "detail", filter)
}

/// The refusal of an envelope whose `source` is not a configured Stripe source (`None`: it is
/// one), snapshot or thin.
pub fn foreign_source(source: &str, detail: &Value, filter: &EventFilter) -> Option<Decoded> {
    (!source.starts_with(&filter.source_prefix)).then(|| Decoded::Refused {
        event_id: detail.get("id").and_then(Value::as_str).map(str::to_owned),
        refusal: Refusal::ForeignSource {
            source: source.to_owned(),
        },
    })
}

/// Decodes a Stripe event itself (no envelope: e.g. one listed from `/v1/events` by the
/// reconciler). `at` names the event in error paths (`detail` inside an envelope).
///
/// # Errors
/// [`DecodeError`] naming the field when a field stockbridge reads is missing or invalid.
pub fn decode_event(event: &Value, at: &str, filter: &EventFilter) -> Result<Decoded, DecodeError> {
    let head: EventHead = decode_at(at, event)?;
    if head.livemode != filter.livemode {
        return Ok(Decoded::Refused {
            event_id: Some(head.id),
            refusal: Refusal::LivemodeMismatch {
                event: head.livemode,
                configured: filter.livemode,
            },
        });
    }
    let intent = match head.event_type.as_str() {
        INTENT_AUTHORIZED => Some(IntentKind::Authorized),
        INTENT_FAILED => Some(IntentKind::Failed),
        INTENT_CANCELED => Some(IntentKind::Canceled),
        _ => None,
    };
    if let Some(kind) = intent {
        return decode_intent(head, kind, at);
    }
    if [CHARGE_REFUNDED, DISPUTE_CLOSED].contains(&head.event_type.as_str()) {
        return decode_after_sale(head.id, &head.event_type, &head.data, at);
    }
    let kind = match head.event_type.as_str() {
        CHECKOUT_COMPLETED => CheckoutKind::Completed,
        ASYNC_PAYMENT_SUCCEEDED => CheckoutKind::AsyncPaymentSucceeded,
        ASYNC_PAYMENT_FAILED => CheckoutKind::AsyncPaymentFailed,
        _ => {
            return Ok(Decoded::Ignored {
                event_id: head.id,
                event_type: head.event_type,
            });
        }
    };
    let event_id = id(&format!("{at}.id"), head.id, StripeEventId::parse)?;
    let data: EventData = decode_at(&format!("{at}.data"), &head.data)?;
    let session = decode_session(data.object, at)?;
    Ok(Decoded::Checkout(CheckoutEvent {
        kind,
        event_id,
        session,
        created: head.created,
        paid_at: PaidAt::At(Timestamp(
            head.created.saturating_mul(1000).saturating_add(999),
        )),
    }))
}

/// A PaymentIntent event of a checkout-API hold; one without `metadata.hold_id` (a Checkout
/// Session's, or not made by the checkout API) is not ours.
fn decode_intent(head: EventHead, kind: IntentKind, at: &str) -> Result<Decoded, DecodeError> {
    let event_id = id(&format!("{at}.id"), head.id.clone(), StripeEventId::parse)?;
    let object: IntentObject = decode_at(
        &format!("{at}.data.object"),
        head.data.get("object").unwrap_or(&Value::Null),
    )?;
    // PaymentIntents of Checkout Sessions and anything not made by the checkout API have
    // no hold: not ours.
    let hold = match object.metadata.as_ref().and_then(|m| m.get("hold_id")) {
        Some(Value::String(h)) if !h.is_empty() => h.clone(),
        _ => {
            return Ok(Decoded::Ignored {
                event_id: head.id,
                event_type: head.event_type,
            });
        }
    };
    Ok(Decoded::Intent(IntentEvent {
        kind,
        event_id,
        payment_intent: id(
            &format!("{at}.data.object.id"),
            object.id,
            PaymentIntentId::parse,
        )?,
        hold_id: id(
            &format!("{at}.data.object.metadata.hold_id"),
            hold,
            OrderId::parse,
        )?,
    }))
}

/// The fields of a Checkout Session the inventory uses, each error naming its field.
fn decode_session(o: SessionObject, at: &str) -> Result<CheckoutSession, DecodeError> {
    let payment_status = match o.payment_status.as_str() {
        "paid" => SessionPaymentStatus::Paid,
        "unpaid" => SessionPaymentStatus::Unpaid,
        "no_payment_required" => SessionPaymentStatus::NoPaymentRequired,
        other => {
            return Err(DecodeError {
                field: format!("{at}.data.object.payment_status"),
                message: format!(
                    "unknown value {other:?} (expected paid, unpaid or no_payment_required)"
                ),
            });
        }
    };
    let store_id = match o.metadata.as_ref().and_then(|m| m.get("store_id")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(id(
            &format!("{at}.data.object.metadata.store_id"),
            s.clone(),
            StoreId::parse,
        )?),
        Some(other) => {
            return Err(DecodeError {
                field: format!("{at}.data.object.metadata.store_id"),
                message: format!("expected a string, found {other}"),
            });
        }
    };
    Ok(CheckoutSession {
        id: id(&format!("{at}.data.object.id"), o.id, OrderId::parse)?,
        payment_status,
        payment_intent: o
            .payment_intent
            .map(|v| {
                id(
                    &format!("{at}.data.object.payment_intent"),
                    v.id(),
                    PaymentIntentId::parse,
                )
            })
            .transpose()?,
        payment_link: o
            .payment_link
            .map(|v| {
                id(
                    &format!("{at}.data.object.payment_link"),
                    v.id(),
                    PaymentLinkId::parse,
                )
            })
            .transpose()?,
        store_id,
        currency: o
            .currency
            .as_ref()
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase),
        amount_subtotal: o.amount_subtotal.as_ref().and_then(Value::as_u64),
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod sample_events;

//! The catalog-sync queue's messages: a DynamoDB stream record of a product's details (via the
//! EventBridge Pipe) or an EventBridge envelope of a Stripe catalog event, decoded into what to
//! sync ([`SyncMessage`]). The sync itself is `crate::catalog_sync`.

use stockbridge_domain::{PaymentLinkId, PriceId, ProductId};

use super::thin_event::{decode_thin, is_thin};
use super::{CATALOG_EVENT_TYPES, DecodeError, EventFilter};
use crate::catalog_sync::Trigger;

/// What a catalog-sync message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncTarget {
    /// Sync this product.
    Product(ProductId),
    /// Sync the product this Payment Link sells (found through Stripe).
    Link(PaymentLinkId),
    /// Sync the product of this Price (found through Stripe; a thin event names only the price).
    Price(PriceId),
}

/// A decoded catalog-sync message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncMessage {
    /// Work to do.
    Sync {
        /// What to sync.
        target: SyncTarget,
        /// Why.
        trigger: Trigger,
    },
    /// Nothing to do, and why (logged, then the message is deleted).
    Skip(String),
}

/// Decodes an SQS message body of the catalog-sync queue: a DynamoDB stream record (via the
/// EventBridge Pipe) or an EventBridge envelope of a Stripe catalog event.
///
/// # Errors
/// [`DecodeError`] naming the field: such a message can never succeed and is
/// dead-lettered with that reason.
pub fn decode_sync_message(body: &str, filter: &EventFilter) -> Result<SyncMessage, DecodeError> {
    let bad = |field: &str, message: String| DecodeError {
        field: field.to_owned(),
        message,
    };
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| bad("body", format!("not JSON: {e}")))?;
    let str_at = |path: &str| v.pointer(path).and_then(serde_json::Value::as_str);
    if v.get("dynamodb").is_some() {
        let pk = str_at("/dynamodb/Keys/pk/S")
            .ok_or_else(|| bad("dynamodb.Keys.pk.S", "missing".into()))?;
        let sk = str_at("/dynamodb/Keys/sk/S")
            .ok_or_else(|| bad("dynamodb.Keys.sk.S", "missing".into()))?;
        let product = pk
            .strip_prefix("PRODUCT#")
            .filter(|_| sk == "DETAILS")
            .ok_or_else(|| {
                bad(
                    "dynamodb.Keys",
                    format!(
                        "{pk}/{sk} is not a product's details record (check the pipe's filter)"
                    ),
                )
            })?;
        let product =
            ProductId::parse(product).map_err(|e| bad("dynamodb.Keys.pk.S", e.to_string()))?;
        return Ok(SyncMessage::Sync {
            target: SyncTarget::Product(product),
            trigger: Trigger::CatalogChange,
        });
    }
    if is_thin(&v) {
        return decode_thin_catalog(&v, filter);
    }
    // A webhook hands over the bare event; EventBridge its envelope, from a source to check.
    let (event, at) = if v.get("object").and_then(serde_json::Value::as_str) == Some("event") {
        (&v, "body")
    } else {
        let source = str_at("/source").ok_or_else(|| {
            bad(
                "source",
                "missing: neither a stream record nor a Stripe event".into(),
            )
        })?;
        if !source.starts_with(&filter.source_prefix) {
            return Ok(SyncMessage::Skip(format!(
                "event source {source:?} is not a configured Stripe source"
            )));
        }
        let detail = v.get("detail").unwrap_or(&serde_json::Value::Null);
        if is_thin(detail) {
            return decode_thin_catalog(detail, filter);
        }
        (detail, "detail")
    };
    decode_catalog_event(event, at, filter)
}

/// A Stripe catalog event with its snapshot (`at`: where it sits in the message).
fn decode_catalog_event(
    event: &serde_json::Value,
    at: &str,
    filter: &EventFilter,
) -> Result<SyncMessage, DecodeError> {
    let bad = |field: &str, message: String| DecodeError {
        field: format!("{at}.{field}"),
        message,
    };
    let str_at = |path: &str| event.pointer(path).and_then(serde_json::Value::as_str);
    let event_type = str_at("/type").ok_or_else(|| bad("type", "missing".into()))?;
    if !CATALOG_EVENT_TYPES.contains(&event_type) {
        return Ok(SyncMessage::Skip(format!(
            "event type {event_type} is not a catalog event"
        )));
    }
    let livemode = event.get("livemode").and_then(serde_json::Value::as_bool);
    if livemode != Some(filter.livemode) {
        return Ok(SyncMessage::Skip(format!(
            "event livemode={livemode:?} but this deployment expects livemode={}",
            filter.livemode
        )));
    }
    let object = |field: &str| {
        str_at(&format!("/data/object/{field}"))
            .ok_or_else(|| bad(&format!("data.object.{field}"), "missing".into()))
    };
    let target = match event_type.split('.').next() {
        Some("product") => SyncTarget::Product(
            ProductId::parse(object("id")?).map_err(|e| bad("data.object.id", e.to_string()))?,
        ),
        Some("price") => {
            // `product` is an id, or an object when expanded.
            let product = str_at("/data/object/product")
                .or_else(|| str_at("/data/object/product/id"))
                .ok_or_else(|| bad("data.object.product", "missing".into()))?;
            SyncTarget::Product(
                ProductId::parse(product).map_err(|e| bad("data.object.product", e.to_string()))?,
            )
        }
        _ => match str_at("/data/object/metadata/product_id") {
            Some(p) => SyncTarget::Product(
                ProductId::parse(p)
                    .map_err(|e| bad("data.object.metadata.product_id", e.to_string()))?,
            ),
            None => SyncTarget::Link(
                PaymentLinkId::parse(object("id")?)
                    .map_err(|e| bad("data.object.id", e.to_string()))?,
            ),
        },
    };
    Ok(SyncMessage::Sync {
        target,
        trigger: Trigger::StripeChange,
    })
}

/// A thin catalog event (`v1.product.updated`, ...): only the object's id, which is all the
/// sync needs (it reads current state); a price is resolved to its product by the sync.
fn decode_thin_catalog(
    v: &serde_json::Value,
    filter: &EventFilter,
) -> Result<SyncMessage, DecodeError> {
    let thin = decode_thin(v, "body")?;
    let Some(event_type) = thin
        .v1_type()
        .filter(|t| CATALOG_EVENT_TYPES.contains(t))
        .map(str::to_owned)
    else {
        return Ok(SyncMessage::Skip(format!(
            "event type {} is not a catalog event",
            thin.event_type
        )));
    };
    if thin.livemode.is_some_and(|l| l != filter.livemode) {
        return Ok(SyncMessage::Skip(format!(
            "event livemode={:?} but this deployment expects livemode={}",
            thin.livemode, filter.livemode
        )));
    }
    let bad = |message: String| DecodeError {
        field: "body.related_object".into(),
        message,
    };
    let related = thin
        .related
        .ok_or_else(|| bad(format!("missing on a {event_type} event")))?;
    let target = match related.kind.as_str() {
        "product" => {
            SyncTarget::Product(ProductId::parse(&related.id).map_err(|e| bad(e.to_string()))?)
        }
        "price" => SyncTarget::Price(PriceId::parse(&related.id).map_err(|e| bad(e.to_string()))?),
        "payment_link" => {
            SyncTarget::Link(PaymentLinkId::parse(&related.id).map_err(|e| bad(e.to_string()))?)
        }
        other => return Err(bad(format!("{other} is not a catalog object"))),
    };
    Ok(SyncMessage::Sync {
        target,
        trigger: Trigger::StripeChange,
    })
}

#[cfg(test)]
pub(crate) mod tests;

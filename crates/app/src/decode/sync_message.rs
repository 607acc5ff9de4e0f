//! The catalog-sync queue's messages: a DynamoDB stream record of a product's details (via the
//! EventBridge Pipe) or an EventBridge envelope of a Stripe catalog event, decoded into what to
//! sync ([`SyncMessage`]). The sync itself is `crate::catalog_sync`.

use stockbridge_domain::{PaymentLinkId, ProductId};

use super::{CATALOG_EVENT_TYPES, DecodeError, EventFilter};
use crate::catalog_sync::Trigger;

/// What a catalog-sync message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncTarget {
    /// Sync this product.
    Product(ProductId),
    /// Sync the product this Payment Link sells (found through Stripe).
    Link(PaymentLinkId),
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
    let source = str_at("/source").ok_or_else(|| {
        bad(
            "source",
            "missing: neither a stream record nor an EventBridge event".into(),
        )
    })?;
    if !source.starts_with(&filter.source_prefix) {
        return Ok(SyncMessage::Skip(format!(
            "event source {source:?} is not a configured Stripe source"
        )));
    }
    let event_type = str_at("/detail/type").ok_or_else(|| bad("detail.type", "missing".into()))?;
    if !CATALOG_EVENT_TYPES.contains(&event_type) {
        return Ok(SyncMessage::Skip(format!(
            "event type {event_type} is not a catalog event"
        )));
    }
    let livemode = v
        .pointer("/detail/livemode")
        .and_then(serde_json::Value::as_bool);
    if livemode != Some(filter.livemode) {
        return Ok(SyncMessage::Skip(format!(
            "event livemode={livemode:?} but this deployment expects livemode={}",
            filter.livemode
        )));
    }
    let object = |field: &str| {
        str_at(&format!("/detail/data/object/{field}"))
            .ok_or_else(|| bad(&format!("detail.data.object.{field}"), "missing".into()))
    };
    let target = match event_type.split('.').next() {
        Some("product") => SyncTarget::Product(
            ProductId::parse(object("id")?)
                .map_err(|e| bad("detail.data.object.id", e.to_string()))?,
        ),
        Some("price") => {
            // `product` is an id, or an object when expanded.
            let product = str_at("/detail/data/object/product")
                .or_else(|| str_at("/detail/data/object/product/id"))
                .ok_or_else(|| bad("detail.data.object.product", "missing".into()))?;
            SyncTarget::Product(
                ProductId::parse(product)
                    .map_err(|e| bad("detail.data.object.product", e.to_string()))?,
            )
        }
        _ => match str_at("/detail/data/object/metadata/product_id") {
            Some(p) => SyncTarget::Product(
                ProductId::parse(p)
                    .map_err(|e| bad("detail.data.object.metadata.product_id", e.to_string()))?,
            ),
            None => SyncTarget::Link(
                PaymentLinkId::parse(object("id")?)
                    .map_err(|e| bad("detail.data.object.id", e.to_string()))?,
            ),
        },
    };
    Ok(SyncMessage::Sync {
        target,
        trigger: Trigger::StripeChange,
    })
}

#[cfg(test)]
pub(crate) mod tests;

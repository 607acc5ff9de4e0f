//! The catalog-sync queue's messages (decoded in `crate::decode::sync_message`): whether an
//! event's snapshot already agrees with the catalog, and running one.

use super::*;
pub use crate::decode::sync_message::{SyncMessage, SyncTarget, decode_sync_message};

/// What a Stripe catalog event says its object looks like (its snapshot payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snapshot {
    /// A Product.
    Product(StripeProduct),
    /// A Price.
    Price(stockbridge_domain::StripePrice),
    /// A Payment Link, with the fields the event says changed.
    Link {
        /// Its id.
        id: PaymentLinkId,
        /// Keys of `data.previous_attributes` (empty for `created`).
        changed: Vec<String>,
    },
}

/// The snapshot of a Stripe catalog event in an SQS body, in its EventBridge envelope or bare
/// (from the webhook) (`None`: not an event, a thin one, or a shape we do not read — the sync
/// then asks Stripe).
pub fn event_snapshot(body: &str) -> Option<Snapshot> {
    let message: serde_json::Value = serde_json::from_str(body).ok()?;
    let v = match message.get("detail") {
        Some(detail) => detail,
        None => &message,
    };
    let kind = v.pointer("/type")?.as_str()?;
    let o = v.pointer("/data/object")?;
    let s = |k: &str| o.get(k).and_then(serde_json::Value::as_str);
    let id_of = |k: &str| s(k).or_else(|| o.get(k)?.get("id")?.as_str());
    match kind.split('.').next()? {
        "product" => Some(Snapshot::Product(StripeProduct {
            id: ProductId::parse(s("id")?).ok()?,
            name: s("name")?.to_owned(),
            description: s("description").map(str::to_owned),
            images: o
                .get("images")?
                .as_array()?
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            active: o.get("active")?.as_bool()?,
            metadata: o
                .get("metadata")?
                .as_object()?
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect(),
            updated: o.get("updated")?.as_i64()?,
            default_price: id_of("default_price").and_then(|p| PriceId::parse(p).ok()),
        })),
        "price" => Some(Snapshot::Price(stockbridge_domain::StripePrice {
            id: PriceId::parse(s("id")?).ok()?,
            product: ProductId::parse(id_of("product")?).ok()?,
            amount: o.get("unit_amount").and_then(serde_json::Value::as_u64),
            currency: s("currency")?.to_owned(),
            active: o.get("active")?.as_bool()?,
        })),
        "payment_link" => Some(Snapshot::Link {
            id: PaymentLinkId::parse(s("id")?).ok()?,
            changed: v
                .pointer("/data/previous_attributes")
                .and_then(serde_json::Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, old)| changed_link_field(k, old))
                        .collect()
                })
                .unwrap_or_default(),
        }),
        _ => None,
    }
}

/// Link fields owned by stock (the link check and the link guard), not by the catalog.
const STOCK_OWNED_LINK_FIELDS: [&str; 5] = [
    "active",
    "inactive_message",
    "restrictions",
    "updated",
    GUARD_METADATA_FIELD,
];

/// A metadata change of the link guard's mark alone (`stockbridge_limit`): the guard's own
/// write, stock's business.
const GUARD_METADATA_FIELD: &str = "metadata.stockbridge_limit";

/// The name of a changed link field: `metadata` when any key but the guard's mark changed.
fn changed_link_field(key: &str, old: &serde_json::Value) -> String {
    let guard_only = key == "metadata"
        && old.as_object().is_some_and(|m| {
            !m.is_empty()
                && m.keys()
                    .all(|k| k == stockbridge_domain::link_guard::GUARD_METADATA_KEY)
        });
    if guard_only {
        GUARD_METADATA_FIELD.to_owned()
    } else {
        key.to_owned()
    }
}

/// Whether an event's snapshot already agrees with the catalog, so the sync has nothing to do
/// (most catalog events are the echo of the sync's own writes). `None` entry: not the
/// catalog's product.
pub fn snapshot_agrees(entry: Option<&crate::ports::CatalogEntry>, snapshot: &Snapshot) -> bool {
    if let Snapshot::Link { changed, .. } = snapshot {
        // A link's price cannot change; its activity is the stock's business.
        return changed
            .iter()
            .all(|k| STOCK_OWNED_LINK_FIELDS.contains(&k.as_str()));
    }
    let Some(e) = entry else {
        return true;
    };
    if e.mapping.synced_revision != e.details.revision || e.mapping.price_id.is_none() {
        return false; // a catalog change is on its way: let the sync run
    }
    match snapshot {
        Snapshot::Product(p) => {
            p.default_price == e.mapping.price_id
                && product_diffs(&product_fields(&e.details, &e.mapping), p).is_empty()
        }
        Snapshot::Price(p) if Some(&p.id) == e.mapping.price_id.as_ref() => {
            p.active && p.charges(&e.details.price)
        }
        // Another price of the product: the catalog sells at its mapped one.
        Snapshot::Price(_) => true,
        Snapshot::Link { .. } => true,
    }
}

/// Why a catalog-sync message failed.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// It can never succeed (malformed, or Stripe refused the change): dead-letter it with this
    /// reason.
    #[error("{0}")]
    Poison(String),
    /// It may succeed later (throttling, Stripe 429/5xx, a concurrent sync): retry it.
    #[error("{0}")]
    Retry(SyncError),
}

impl<S, K, C> CatalogSync<S, K, C>
where
    S: CatalogStore + InventoryStore + ReconciliationLog,
    K: StripeCatalog + Payments,
    C: Clock,
{
    /// Handles one message of the catalog-sync queue.
    ///
    /// # Errors
    /// [`MessageError`]: poison or retry.
    pub async fn handle_message(
        &self,
        body: &str,
        filter: &crate::decode::EventFilter,
    ) -> Result<SyncReport, MessageError> {
        let (target, trigger) = match decode_sync_message(body, filter)
            .map_err(|e| MessageError::Poison(e.to_string()))?
        {
            SyncMessage::Skip(why) => {
                info!(reason = %why, "catalog message skipped");
                return Ok(SyncReport::default());
            }
            SyncMessage::Sync { target, trigger } => (target, trigger),
        };
        // Most catalog events echo the sync's own writes: when the event's snapshot already
        // agrees with the catalog, skip without a Stripe call.
        let snapshot = (trigger == Trigger::StripeChange)
            .then(|| event_snapshot(body))
            .flatten();
        if let Some(snap) = &snapshot {
            let entry = match &target {
                SyncTarget::Product(p) => self
                    .store
                    .entry(p)
                    .await
                    .map_err(|e| MessageError::Retry(e.into()))?,
                SyncTarget::Link(_) | SyncTarget::Price(_) => None,
            };
            if snapshot_agrees(entry.as_ref(), snap) {
                return Ok(SyncReport {
                    up_to_date: true,
                    ..SyncReport::default()
                });
            }
        }
        let retry_or_poison = |e: SyncError| {
            if e.is_retryable() {
                MessageError::Retry(e)
            } else {
                MessageError::Poison(e.to_string())
            }
        };
        let product = match target {
            SyncTarget::Product(p) => p,
            SyncTarget::Link(l) => match self.product_of_link(&l).await.map_err(retry_or_poison)? {
                Some(p) => p,
                None => {
                    info!(link = %l, "payment link of no known product: skipped");
                    return Ok(SyncReport::default());
                }
            },
            SyncTarget::Price(price) => {
                match self
                    .stripe
                    .price(&price)
                    .await
                    .map_err(|e| retry_or_poison(e.into()))?
                {
                    Some(p) => p.product,
                    None => {
                        info!(%price, "price unknown to Stripe: skipped");
                        return Ok(SyncReport::default());
                    }
                }
            }
        };
        match self.sync_product(&product, trigger).await {
            // A Stripe event while a sync of the product runs: that sync is already making
            // Stripe match the catalog (drift it misses is found by the reconciler's check).
            Err(SyncError::Busy) if trigger == Trigger::StripeChange => {
                info!(product = %product, "Stripe event while a sync of the product runs: left to it");
                Ok(SyncReport::default())
            }
            r => r.map_err(retry_or_poison),
        }
    }
}

#[cfg(test)]
mod tests;

//! Catalog -> Stripe sync: the use case behind the `catalog-sync` Lambda (and the reconciler's
//! repair of catalog fields).
//!
//! Every message — a catalog change from the table's stream, or a Stripe `product.*`,
//! `price.*`, `payment_link.*` event — only names a product. The sync always reads the product's
//! CURRENT details and makes Stripe match them, so messages can arrive twice, late or out of
//! order: the result is the same. Each Stripe write carries an idempotency key derived from the
//! change ([`sync_key`]), and the mapping is written last with compare-and-set, so a crash
//! between any two steps is repaired by the next delivery without creating anything twice.

use stockbridge_domain::invariants::{Discrepancy, Repair};
use stockbridge_domain::{
    CatalogItem, FieldDiff, PaymentLinkId, PriceId, ProductId, StoreId, StripeMapping,
    StripeProduct, WriteSet, forget_links_off, product_diffs, product_fields, record_links_off,
    sync_key,
};
use tracing::{info, warn};

mod steps;

use crate::effects::SOLD_OUT_MESSAGE;
use crate::ports::{
    CatalogStore, Clock, InventoryStore, Payments, PaymentsError, ReconciliationLog, StoreError,
    StripeCatalog,
};

/// Why the sync of a product was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The catalog changed (the table's stream). Skipped when Stripe already matched this
    /// revision.
    CatalogChange,
    /// Stripe said something changed there (`product.updated`, ...): compare everything.
    StripeChange,
    /// The reconciler found a difference: compare everything.
    Reconcile,
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    /// The product.
    pub product: Option<ProductId>,
    /// Nothing to do: the product is not in the catalog (a Stripe-only product).
    pub not_in_catalog: bool,
    /// Nothing to do: Stripe already matched this revision.
    pub up_to_date: bool,
    /// Objects created at Stripe (`product`, `price`, `link:{store}`).
    pub created: Vec<String>,
    /// Objects changed at Stripe (`product`, `price_archived`, `link_off:{store}`).
    pub updated: Vec<String>,
    /// Catalog-owned fields someone changed at Stripe, now put back.
    pub drift: Vec<FieldDiff>,
}

/// Why a sync failed. Retryable ones go back to the queue; the rest are dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The store failed.
    #[error("the store: {0}")]
    Store(#[from] StoreError),
    /// Stripe failed.
    #[error("Stripe: {0}")]
    Stripe(#[from] PaymentsError),
    /// Another sync of the product is under way; retry later.
    #[error("another sync of this product is under way")]
    Busy,
}

/// How long a sync may hold a product: longer than the catalog-sync function's timeout (30 s),
/// which bounds a sync (it hands its batch back before the deadline).
const LEASE_MS: i64 = 35_000;

impl SyncError {
    /// Whether a later attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Busy => true,
            Self::Store(e) => e.is_retryable(),
            Self::Stripe(e) => e.is_retryable(),
        }
    }
}

/// The catalog sync use case.
#[derive(Debug, Clone)]
pub struct CatalogSync<S, K, C> {
    /// Catalog, items and the reconciliation log.
    pub store: S,
    /// Stripe.
    pub stripe: K,
    /// Time.
    pub clock: C,
}

impl<S, K, C> CatalogSync<S, K, C>
where
    S: CatalogStore + InventoryStore + ReconciliationLog,
    K: StripeCatalog + Payments,
    C: Clock,
{
    /// Makes Stripe match the product's current details: Product fields, one active Price at
    /// the catalog's amount (the old one archived), one Payment Link per store selling it
    /// (links on an old price replaced), and records the mapping. Drift (a catalog-owned field
    /// changed at Stripe after it matched) is put back, logged and recorded.
    ///
    /// # Errors
    /// [`SyncError`]; what was done stays done and the next attempt continues from there.
    pub async fn sync_product(
        &self,
        product: &ProductId,
        trigger: Trigger,
    ) -> Result<SyncReport, SyncError> {
        let mut report = SyncReport {
            product: Some(product.clone()),
            ..SyncReport::default()
        };
        let Some(entry) = self.store.entry(product).await? else {
            report.not_in_catalog = true;
            return Ok(report);
        };
        let (details, mapping) = (entry.details, entry.mapping);
        if trigger == Trigger::CatalogChange && mapping.synced_revision >= details.revision {
            report.up_to_date = true;
            return Ok(report);
        }
        // One sync per product at a time: claim the mapping before any Stripe write.
        let now = self.clock.now();
        if mapping.lease_until.is_some_and(|l| l.0 > now.0) {
            return Err(SyncError::Busy);
        }
        let claimed = StripeMapping {
            lease_until: Some(stockbridge_domain::Timestamp(now.0 + LEASE_MS)),
            version: mapping.version + 1,
            ..mapping.clone()
        };
        match self
            .store
            .save_mapping(product, &claimed, mapping.version)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(SyncError::Busy),
            Err(e) => return Err(e.into()),
        }
        let result = self
            .sync_claimed(product, trigger, details, mapping, claimed.version, report)
            .await;
        if result.is_err() {
            // Free the product for the next attempt at once (a crash frees it at expiry).
            let freed = StripeMapping {
                lease_until: None,
                version: claimed.version + 1,
                ..claimed.clone()
            };
            if let Err(e) = self
                .store
                .save_mapping(product, &freed, claimed.version)
                .await
            {
                // Not freed now: the lease's expiry frees it.
                warn!(product = %product, error = %e, "the product's sync lease could not be freed");
            }
        }
        result
    }

    /// Makes a link (or reuses the one an earlier attempt made: same key), puts it on the
    /// store's item in place of `replacing`, switches it off if the item is sold out, then
    /// switches `replacing` off.
    #[allow(clippy::too_many_arguments)] // private: one call site per link plan
    async fn new_link(
        &self,
        store: &StoreId,
        product: &ProductId,
        name: &str,
        price: &PriceId,
        replacing: Option<&PaymentLinkId>,
        generation: u64,
        report: &mut SyncReport,
    ) -> Result<PaymentLinkId, SyncError> {
        // The last synced revision tells a link made again later (a store re-added by a later
        // change) from a retry of this one.
        let key = sync_key(
            product,
            &format!("link-{store}"),
            0,
            &format!("{price}|{generation}"),
        );
        let link = self.stripe.create_link(price, store, product, &key).await?;
        report.created.push(format!("link:{store}"));
        self.attach_link(store, product, name, &link.id, replacing)
            .await?;
        if let Some(old) = replacing {
            self.stripe
                .set_link_active(old, false, Some(REPLACED_MESSAGE))
                .await?;
            report.updated.push(format!("link_replaced:{store}"));
        }
        Ok(link.id)
    }

    /// Puts `link` on the store's item (instead of `replacing`) and keeps the name in step.
    /// At stock 0 the link is switched off and recorded as switched off by stockbridge, so a
    /// restock switches it on.
    async fn attach_link(
        &self,
        store: &StoreId,
        product: &ProductId,
        name: &str,
        link: &PaymentLinkId,
        replacing: Option<&PaymentLinkId>,
    ) -> Result<(), SyncError> {
        let Some(item) = self.store.item(store, product).await? else {
            warn!(store = %store, product = %product, "no stock record for this store yet: its link waits until `stockbridge catalog import` or `stock set` creates one");
            return Ok(());
        };
        let mut links: Vec<PaymentLinkId> = item
            .payment_links
            .iter()
            .filter(|l| Some(*l) != replacing)
            .cloned()
            .collect();
        if !links.contains(link) {
            links.push(link.clone());
        }
        if links != item.payment_links || item.name != name {
            self.store
                .update_item_details(store, product, name, &links)
                .await?;
        }
        if let Some(old) = replacing {
            self.forget_switched_off(store, product, old).await?;
        }
        if item.available == 0 && !item.deactivated_links.contains(link) {
            self.switch_off_sold_out(&item, link).await?;
        }
        Ok(())
    }

    async fn switch_off_sold_out(
        &self,
        item: &CatalogItem,
        link: &PaymentLinkId,
    ) -> Result<(), SyncError> {
        if self.store.controls().await?.links_paused {
            warn!(payment_link = %link, "link switches are paused: the new link of a sold-out product stays on until the reconciler runs after `stockbridge resume links`");
            return Ok(());
        }
        let found = self
            .stripe
            .set_link_active(link, false, Some(SOLD_OUT_MESSAGE))
            .await?;
        // Already off with another message: someone else's choice, not stockbridge's to undo.
        if let crate::ports::LinkSwitch::Unchanged { inactive_message } = &found
            && inactive_message.as_deref() != Some(SOLD_OUT_MESSAGE)
        {
            return Ok(());
        }
        let Some(fresh) = self
            .store
            .item(&item.store_id, &item.product_id)
            .await?
            .filter(|f| !f.deactivated_links.contains(link))
        else {
            return Ok(()); // gone, or recorded by a concurrent sync
        };
        let mut off = fresh.deactivated_links.clone();
        off.push(link.clone());
        let record = WriteSet {
            items: vec![record_links_off(&fresh, off)],
            ..WriteSet::default()
        };
        // A concurrent stock change wins; the reconciler's link check settles the rest.
        match self.store.commit(&record).await {
            Ok(()) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn retire_link(
        &self,
        store: &StoreId,
        product: &ProductId,
        link: &PaymentLinkId,
    ) -> Result<(), SyncError> {
        if let Some(item) = self.store.item(store, product).await? {
            let links: Vec<PaymentLinkId> = item
                .payment_links
                .iter()
                .filter(|l| *l != link)
                .cloned()
                .collect();
            if links != item.payment_links {
                self.store
                    .update_item_details(store, product, &item.name, &links)
                    .await?;
            }
            self.forget_switched_off(store, product, link).await?;
        }
        match self
            .stripe
            .set_link_active(link, false, Some(REPLACED_MESSAGE))
            .await
        {
            Ok(_) | Err(PaymentsError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A replaced or retired link leaves the item's record of links stockbridge switched off as
    /// well as its links, so a restock never switches an old-price link back on.
    async fn forget_switched_off(
        &self,
        store: &StoreId,
        product: &ProductId,
        link: &PaymentLinkId,
    ) -> Result<(), SyncError> {
        for _ in 0..5 {
            let Some(item) = self.store.item(store, product).await? else {
                return Ok(());
            };
            let Some(forget) = forget_links_off(&item, std::slice::from_ref(link)) else {
                return Ok(());
            };
            let write = WriteSet {
                items: vec![forget],
                ..WriteSet::default()
            };
            match self.store.commit(&write).await {
                Ok(()) => return Ok(()),
                // A stock change in between: read it again.
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict.into())
    }

    /// The product a Stripe catalog object belongs to: a Product is itself, a Price names its
    /// product, a Payment Link carries `metadata.product_id` when stockbridge made it (else its
    /// first price's product).
    ///
    /// # Errors
    /// [`SyncError`] when Stripe cannot be asked.
    pub async fn product_of_link(
        &self,
        link: &PaymentLinkId,
    ) -> Result<Option<ProductId>, SyncError> {
        let Some(l) = self.stripe.link(link).await? else {
            return Ok(None);
        };
        if let Some(p) = l.product_id {
            return Ok(Some(p));
        }
        match l.prices.first() {
            Some(price) => Ok(self.stripe.price(price).await?.map(|p| p.product)),
            None => Ok(None),
        }
    }
}

/// Shown by a link retired because its price changed or its store stopped selling.
pub const REPLACED_MESSAGE: &str =
    "This link has been replaced. Please use the shop's current link.";

/// Whether a Stripe Product agrees with the catalog (used by the reconciler's field check).
pub fn product_agrees(
    entry: &crate::ports::CatalogEntry,
    product: &StripeProduct,
) -> Vec<FieldDiff> {
    product_diffs(&product_fields(&entry.details, &entry.mapping), product)
}

pub use crate::events::CATALOG_EVENT_TYPES;

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
/// [`crate::events::DecodeError`] naming the field: such a message can never succeed and is
/// dead-lettered with that reason.
pub fn decode_sync_message(
    body: &str,
    filter: &crate::events::EventFilter,
) -> Result<SyncMessage, crate::events::DecodeError> {
    use crate::events::DecodeError;
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

/// The snapshot of a Stripe catalog event in an SQS body (`None`: not an event, or a shape we do
/// not read — the sync then asks Stripe).
pub fn event_snapshot(body: &str) -> Option<Snapshot> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let kind = v.pointer("/detail/type")?.as_str()?;
    let o = v.pointer("/detail/data/object")?;
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
                .pointer("/detail/data/previous_attributes")
                .and_then(serde_json::Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
        }),
        _ => None,
    }
}

/// Link fields owned by stock (the link check), not by the catalog.
const STOCK_OWNED_LINK_FIELDS: [&str; 4] =
    ["active", "inactive_message", "restrictions", "updated"];

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventFilter;

    fn filter() -> EventFilter {
        EventFilter {
            source_prefix: "aws.partner/stripe.com/".into(),
            livemode: false,
        }
    }

    fn event(kind: &str, object: serde_json::Value) -> String {
        serde_json::json!({
            "source": "aws.partner/stripe.com/ed_test",
            "detail-type": kind,
            "detail": {"id": "evt_1", "type": kind, "livemode": false, "data": {"object": object}},
        })
        .to_string()
    }

    fn product(p: &str) -> SyncMessage {
        SyncMessage::Sync {
            target: SyncTarget::Product(ProductId::parse(p).unwrap()),
            trigger: Trigger::StripeChange,
        }
    }

    fn entry() -> crate::ports::CatalogEntry {
        let details = stockbridge_domain::ProductDetails {
            product_id: ProductId::parse("tee").unwrap(),
            name: "Tee".into(),
            description: None,
            images: vec![],
            price: stockbridge_domain::Money::new(1500, "usd").unwrap(),
            active: true,
            metadata: Default::default(),
            stores: [StoreId::parse("s1").unwrap()].into_iter().collect(),
            revision: 2,
            updated_at: stockbridge_domain::Timestamp(0),
        };
        let mapping = stockbridge_domain::StripeMapping {
            price_id: Some(PriceId::parse("price_1").unwrap()),
            synced_revision: 2,
            ..Default::default()
        };
        crate::ports::CatalogEntry { details, mapping }
    }

    #[test]
    fn the_echo_of_our_own_write_is_skipped_and_a_dashboard_edit_is_not() {
        let ours = event(
            "product.updated",
            serde_json::json!({"id": "tee", "name": "Tee", "description": null, "images": [],
                "active": true, "metadata": {"theirs": "1"}, "updated": 5, "default_price": "price_1"}),
        );
        let snap = event_snapshot(&ours).unwrap();
        assert!(snapshot_agrees(Some(&entry()), &snap));
        let edited = ours.replace("\"name\":\"Tee\"", "\"name\":\"Edited\"");
        assert!(!snapshot_agrees(
            Some(&entry()),
            &event_snapshot(&edited).unwrap()
        ));
        // While a catalog change is on its way, the sync runs whatever the event says.
        let mut pending = entry();
        pending.details.revision = 3;
        assert!(!snapshot_agrees(Some(&pending), &snap));
    }

    #[test]
    fn price_and_link_events_agree_unless_the_mapped_price_or_owned_link_fields_changed() {
        let price = |id: &str, active: bool| {
            event_snapshot(&event(
                "price.updated",
                serde_json::json!({"id": id, "product": "tee", "unit_amount": 1500, "currency": "usd", "active": active}),
            ))
            .unwrap()
        };
        assert!(snapshot_agrees(Some(&entry()), &price("price_1", true)));
        assert!(
            !snapshot_agrees(Some(&entry()), &price("price_1", false)),
            "ours archived"
        );
        assert!(snapshot_agrees(Some(&entry()), &price("price_old", false)));
        let link = |changed: serde_json::Value| {
            let mut v: serde_json::Value = serde_json::from_str(&event(
                "payment_link.updated",
                serde_json::json!({"id": "plink_1", "active": false}),
            ))
            .unwrap();
            v["detail"]["data"]["previous_attributes"] = changed;
            event_snapshot(&v.to_string()).unwrap()
        };
        assert!(snapshot_agrees(
            None,
            &link(serde_json::json!({"active": true}))
        ));
        assert!(!snapshot_agrees(
            None,
            &link(serde_json::json!({"metadata": {}}))
        ));
    }

    #[test]
    fn a_stream_record_of_details_names_its_product() {
        let body = r#"{"eventName":"MODIFY","eventSource":"aws:dynamodb","dynamodb":{"Keys":{"pk":{"S":"PRODUCT#tee"},"sk":{"S":"DETAILS"}}}}"#;
        assert_eq!(
            decode_sync_message(body, &filter()).unwrap(),
            SyncMessage::Sync {
                target: SyncTarget::Product(ProductId::parse("tee").unwrap()),
                trigger: Trigger::CatalogChange
            }
        );
        let other = body.replace("DETAILS", "STRIPE");
        let err = decode_sync_message(&other, &filter()).unwrap_err();
        assert_eq!(err.field, "dynamodb.Keys");
    }

    #[test]
    fn stripe_catalog_events_name_their_product() {
        assert_eq!(
            decode_sync_message(
                &event("product.updated", serde_json::json!({"id": "prod_1"})),
                &filter()
            )
            .unwrap(),
            product("prod_1")
        );
        assert_eq!(
            decode_sync_message(
                &event(
                    "price.updated",
                    serde_json::json!({"id": "price_1", "product": "prod_2"})
                ),
                &filter()
            )
            .unwrap(),
            product("prod_2")
        );
        assert_eq!(
            decode_sync_message(
                &event(
                    "payment_link.updated",
                    serde_json::json!({"id": "plink_1", "metadata": {"product_id": "prod_3"}})
                ),
                &filter()
            )
            .unwrap(),
            product("prod_3")
        );
        assert_eq!(
            decode_sync_message(
                &event(
                    "payment_link.updated",
                    serde_json::json!({"id": "plink_1", "metadata": {}})
                ),
                &filter()
            )
            .unwrap(),
            SyncMessage::Sync {
                target: SyncTarget::Link(PaymentLinkId::parse("plink_1").unwrap()),
                trigger: Trigger::StripeChange
            }
        );
    }

    #[test]
    fn foreign_or_unrelated_events_are_skipped_and_garbage_is_an_error() {
        let foreign = event("product.updated", serde_json::json!({"id": "prod_1"}))
            .replace("aws.partner/stripe.com/ed_test", "evil.example");
        assert!(matches!(
            decode_sync_message(&foreign, &filter()).unwrap(),
            SyncMessage::Skip(_)
        ));
        let other = event("customer.created", serde_json::json!({"id": "cus_1"}));
        assert!(matches!(
            decode_sync_message(&other, &filter()).unwrap(),
            SyncMessage::Skip(_)
        ));
        assert_eq!(
            decode_sync_message("{", &filter()).unwrap_err().field,
            "body"
        );
        assert_eq!(
            decode_sync_message("{}", &filter()).unwrap_err().field,
            "source"
        );
        let no_id = event("product.updated", serde_json::json!({}));
        assert_eq!(
            decode_sync_message(&no_id, &filter()).unwrap_err().field,
            "detail.data.object.id"
        );
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
        filter: &crate::events::EventFilter,
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
                SyncTarget::Link(_) => None,
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

/// The merchandising fields of one product in one store, as imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailsInput {
    /// The product.
    pub product_id: ProductId,
    /// The store that sells it (added to the product's stores).
    pub store_id: StoreId,
    /// Display name.
    pub name: String,
    /// Longer text.
    pub description: Option<String>,
    /// Image URLs.
    pub images: Vec<String>,
    /// Unit price.
    pub price: stockbridge_domain::Money,
    /// For sale at all.
    pub active: bool,
    /// Catalog-owned metadata.
    pub metadata: std::collections::BTreeMap<String, String>,
}

impl DetailsInput {
    /// Checks the fields against Stripe's limits before anything is written.
    ///
    /// # Errors
    /// [`stockbridge_domain::DetailsError`] naming the field.
    pub fn validate(&self) -> Result<(), stockbridge_domain::DetailsError> {
        stockbridge_domain::ProductDetails {
            product_id: self.product_id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            images: self.images.clone(),
            price: self.price.clone(),
            active: self.active,
            metadata: self.metadata.clone(),
            stores: [self.store_id.clone()].into_iter().collect(),
            revision: 1,
            updated_at: stockbridge_domain::Timestamp(0),
        }
        .validate()
    }
}

/// What writing details did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailsChange {
    /// New product: revision 1.
    Created,
    /// A field changed: the new revision (the sync picks it up from the stream).
    Changed(u64),
    /// Nothing changed: nothing written (no sync, no Stripe call).
    Unchanged,
}

/// Why details could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DetailsWriteError {
    /// A field is invalid.
    #[error(transparent)]
    Invalid(#[from] stockbridge_domain::DetailsError),
    /// The store failed (or kept changing under us).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates or updates a product's details (compare-and-set on the revision; a store is added to
/// the ones that sell it, never removed by an import). Writes nothing when nothing changed.
///
/// # Errors
/// [`DetailsWriteError`].
pub async fn put_details<S: CatalogStore, C: Clock>(
    store: &S,
    clock: &C,
    input: &DetailsInput,
) -> Result<DetailsChange, DetailsWriteError> {
    for _ in 0..5 {
        let current = store.entry(&input.product_id).await?.map(|e| e.details);
        let mut stores = current
            .as_ref()
            .map(|d| d.stores.clone())
            .unwrap_or_default();
        stores.insert(input.store_id.clone());
        let revision = current.as_ref().map_or(0, |d| d.revision);
        let next = stockbridge_domain::ProductDetails {
            product_id: input.product_id.clone(),
            name: input.name.clone(),
            description: input.description.clone().filter(|d| !d.is_empty()),
            images: input.images.clone(),
            price: input.price.clone(),
            active: input.active,
            metadata: input.metadata.clone(),
            stores,
            revision: revision + 1,
            updated_at: clock.now(),
        };
        next.validate()?;
        if let Some(c) = &current {
            let same = stockbridge_domain::ProductDetails {
                revision: c.revision,
                updated_at: c.updated_at,
                ..next.clone()
            };
            if &same == c {
                return Ok(DetailsChange::Unchanged);
            }
        }
        match store
            .put_details(&next, current.as_ref().map(|d| d.revision))
            .await
        {
            Ok(()) if current.is_none() => return Ok(DetailsChange::Created),
            Ok(()) => return Ok(DetailsChange::Changed(next.revision)),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// What the catalog check found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CatalogCheckReport {
    /// Stripe list pages read.
    pub stripe_pages: usize,
    /// Catalog products compared with Stripe.
    pub products: usize,
    /// Discrepancies found.
    pub discrepancies: Vec<Discrepancy>,
    /// How many were repaired (by a full sync of the product).
    pub repaired: usize,
    /// This run continued a listing an earlier run left (its final scan only finds products
    /// never synced).
    pub resumed: bool,
    /// The listing did not fit this run's page budget: the next run continues it.
    pub more: bool,
}

/// Where a catalog check spread over runs stands: the last price id listed.
pub const CATALOG_CHECK_CHECKPOINT: &str = "catalog_check";

impl<S, K, C> CatalogSync<S, K, C>
where
    S: CatalogStore + InventoryStore + ReconciliationLog,
    K: StripeCatalog + Payments,
    C: Clock,
{
    /// Every catalog product has a Stripe Product and an active Price matching the catalog's
    /// owned fields. Streams both sides: Stripe's active prices with their products, 100 per
    /// request (one request checks up to 100 products), each page compared against the catalog
    /// entries read in one batch; then a parallel scan of the catalog (`segments`) finds the
    /// products whose mapped price never showed up. Holds only the ids of the products seen
    /// (about 70 bytes each, measured). Changes younger than `grace_ms` are left to the sync. A
    /// difference is recorded and, unless `dry_run`, repaired by a full sync of the product.
    ///
    /// `max_pages` (0: no limit) bounds one run: a listing that does not fit is continued by
    /// the next run from a checkpoint (`catalog_check`). A check spread over several runs cannot
    /// keep the seen set, so its final scan only finds products never synced; a mapped price
    /// archived at Stripe is then left to its `price.updated` event (see docs/reconciler.md).
    ///
    /// # Errors
    /// [`SyncError`]; repairs already made stay made.
    pub async fn check_catalog(
        &self,
        dry_run: bool,
        segments: u32,
        grace_ms: i64,
        max_pages: usize,
    ) -> Result<CatalogCheckReport, SyncError> {
        let mut report = CatalogCheckReport::default();
        let mut seen: std::collections::HashSet<ProductId> = std::collections::HashSet::new();
        let now = self.clock.now();
        let settled = |e: &crate::ports::CatalogEntry| e.details.updated_at.0 <= now.0 - grace_ms;
        let resumed = self
            .store
            .checkpoint(CATALOG_CHECK_CHECKPOINT)
            .await?
            .filter(|a| !a.is_empty())
            .and_then(|a| PriceId::parse(a).ok());
        report.resumed = resumed.is_some();
        let mut after = resumed;
        loop {
            if max_pages > 0 && report.stripe_pages >= max_pages {
                let at = after.as_ref().map(|a| a.to_string()).unwrap_or_default();
                self.store
                    .save_checkpoint(CATALOG_CHECK_CHECKPOINT, &at)
                    .await?;
                report.more = true;
                return Ok(report);
            }
            let page = self.stripe.prices_page(after.as_ref()).await?;
            report.stripe_pages += 1;
            let ids: Vec<ProductId> = page.items.iter().map(|(_, p)| p.id.clone()).collect();
            let entries = self.store.entries(&ids).await?;
            for (price, product) in &page.items {
                let Some(entry) = entries.get(&product.id) else {
                    continue; // a Stripe-only product: not the catalog's
                };
                if entry.mapping.price_id.as_ref() != Some(&price.id) {
                    continue; // another active price of it; the mapped one is checked below
                }
                if !seen.insert(product.id.clone()) {
                    continue;
                }
                report.products += 1;
                let mut diffs = product_agrees(entry, product);
                if !price.charges(&entry.details.price) {
                    diffs.push(FieldDiff {
                        field: "price".into(),
                        expected: entry.details.price.to_string(),
                        found: format!("{:?} {}", price.amount, price.currency),
                    });
                }
                // A store that sells it without a link (rare: its stock record came after the
                // details); only stores with a stock record can get one.
                let mut unlinked: Vec<&str> = Vec::new();
                for s in &entry.details.stores {
                    if !entry.mapping.links.contains_key(s)
                        && self.store.item(s, &product.id).await?.is_some()
                    {
                        unlinked.push(s.as_str());
                    }
                }
                if !unlinked.is_empty() {
                    diffs.push(FieldDiff {
                        field: "links".into(),
                        expected: "a payment link in every store that sells it".into(),
                        found: format!("none in {}", unlinked.join(", ")),
                    });
                }
                if !diffs.is_empty() && settled(entry) {
                    self.found(&product.id, diffs, dry_run, &mut report).await?;
                }
            }
            match (page.has_more, page.items.last()) {
                (true, Some((last, _))) => after = Some(last.id.clone()),
                _ => break,
            }
        }
        if report.resumed {
            self.store
                .save_checkpoint(CATALOG_CHECK_CHECKPOINT, "")
                .await?;
        }
        // Catalog products whose mapped price was not among Stripe's active prices (after a
        // check spread over runs: products never synced).
        let segments = segments.max(1);
        let complete = !report.resumed;
        let scans =
            (0..segments).map(|segment| self.unseen_in_segment(segment, segments, &seen, complete));
        let mut missing = Vec::new();
        for r in futures_util::future::join_all(scans).await {
            missing.extend(r?);
        }
        for entry in missing {
            if !settled(&entry) {
                continue;
            }
            report.products += 1;
            let found = match &entry.mapping.price_id {
                None => "never synced to Stripe".to_owned(),
                Some(p) => format!("price {p} not active at Stripe (or the product is gone)"),
            };
            let diffs = vec![FieldDiff {
                field: "price".into(),
                expected: format!("an active price of {}", entry.details.price),
                found,
            }];
            self.found(&entry.details.product_id, diffs, dry_run, &mut report)
                .await?;
        }
        Ok(report)
    }

    async fn unseen_in_segment(
        &self,
        segment: u32,
        segments: u32,
        seen: &std::collections::HashSet<ProductId>,
        complete: bool,
    ) -> Result<Vec<crate::ports::CatalogEntry>, SyncError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let (page, next) = self.store.scan_entries(segment, segments, start).await?;
            out.extend(page.into_iter().filter(|e| {
                if complete {
                    !seen.contains(&e.details.product_id)
                } else {
                    e.mapping.synced_revision == 0
                }
            }));
            match next {
                Some(n) => start = Some(n),
                None => return Ok(out),
            }
        }
    }

    async fn found(
        &self,
        product: &ProductId,
        diffs: Vec<FieldDiff>,
        dry_run: bool,
        report: &mut CatalogCheckReport,
    ) -> Result<(), SyncError> {
        let now = self.clock.now();
        let mut repaired = false;
        if !dry_run {
            // One product that cannot be repaired must not stop the check of the others.
            match self.sync_product(product, Trigger::Reconcile).await {
                Ok(_) => {
                    repaired = true;
                    report.repaired += 1;
                }
                Err(e) => {
                    warn!(product = %product, error = %e, "repair failed: recorded, the next run tries again");
                }
            }
        }
        for d in diffs {
            warn!(product = %product, field = %d.field, expected = %d.expected, found = %d.found, dry_run, "catalog and Stripe disagree");
            let discrepancy = Discrepancy {
                what: "catalog_matches_stripe",
                subject: format!("{product}/{}", d.field),
                expected: d.expected,
                found: d.found,
                action: Repair::SyncProduct {
                    product: product.clone(),
                },
                cause: Some(
                    "no catalog-sync message fixed it: a lost stream record or Stripe event, or a message in the dead-letter queue",
                ),
            };
            self.store.record(now, &discrepancy, repaired).await?;
            report.discrepancies.push(discrepancy);
        }
        Ok(())
    }
}

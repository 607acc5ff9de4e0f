//! The catalog sync's steps for one product, under its lease ([`CatalogSync::sync_product`]
//! claims it): 1. the Product, 2. the Price, 3. the Product's fields and default price, 4. one
//! Payment Link per store (and the old Price archived), 5. the mapping, last. Each Stripe write
//! carries its idempotency key, so a crash between any two steps is repaired by the next
//! delivery without making anything twice.

use std::collections::BTreeMap;

use stockbridge_domain::invariants::{Discrepancy, Repair};
use stockbridge_domain::{
    FieldDiff, LinkPlan, PaymentLinkId, PriceChoice, PriceId, ProductDetails, ProductFields,
    ProductId, StoreId, StripeMapping, StripePrice, StripeProduct, choose_price, is_drift,
    plan_link, product_diffs, product_fields, stripe_owned_metadata, sync_key,
};
use tracing::{info, warn};

use super::{CatalogSync, SyncError, SyncReport, Trigger};
use crate::ports::{
    CatalogStore, Clock, InventoryStore, Payments, ReconciliationLog, StripeCatalog,
};

impl<S, K, C> CatalogSync<S, K, C>
where
    S: CatalogStore + InventoryStore + ReconciliationLog,
    K: StripeCatalog + Payments,
    C: Clock,
{
    /// The sync proper, under the product's lease (`claimed`: the mapping's version now).
    pub(super) async fn sync_claimed(
        &self,
        product: &ProductId,
        trigger: Trigger,
        details: ProductDetails,
        mapping: StripeMapping,
        claimed: u64,
        mut report: SyncReport,
    ) -> Result<SyncReport, SyncError> {
        let rev = details.revision;
        let drift_possible = is_drift(&details, &mapping);
        let fields = product_fields(&details, &mapping);
        let r = &mut report;
        // 1. The Product.
        let (stripe_product, diffs) = self
            .product_step(product, &fields, rev, drift_possible, r)
            .await?;
        // 2. The Price.
        let (price_id, mapped) = self
            .price_step(product, &details, &mapping, drift_possible, r)
            .await?;
        // 3. Product fields and default price in one update (before archiving the old price:
        //    Stripe refuses to archive a product's default price).
        let stripe_product = self
            .product_update_step(product, &fields, rev, stripe_product, &diffs, &price_id, r)
            .await?;
        // 4. One link per store.
        let links = self
            .links_step(product, &details, &mapping, &price_id, r)
            .await?;
        // The old price is archived once no link of ours sells it any more.
        if let Some(old) = mapped.as_ref().filter(|p| p.id != price_id && p.active) {
            self.stripe.archive_price(&old.id).await?;
            report.updated.push("price_archived".into());
        }

        // 5. The mapping, last: until it is written, a redelivery redoes the steps above with
        //    the same keys.
        let next = StripeMapping {
            price_id: Some(price_id),
            price: Some(details.price.clone()),
            links,
            metadata_keys: details.metadata.keys().cloned().collect(),
            synced_revision: rev,
            stripe_metadata: stripe_owned_metadata(&fields, &stripe_product),
            stripe_updated: Some(stripe_product.updated),
            version: claimed + 1,
            lease_until: None,
        };
        self.store.save_mapping(product, &next, claimed).await?;
        self.record_drift(product, trigger, &report).await?;
        if !report.created.is_empty() || !report.updated.is_empty() {
            info!(product = %product, revision = rev, created = ?report.created, updated = ?report.updated, "synced to Stripe");
        }
        Ok(report)
    }

    /// 1. The Product, made if missing; what differs from the catalog (drift when it matched).
    async fn product_step(
        &self,
        product: &ProductId,
        fields: &ProductFields,
        rev: u64,
        drift_possible: bool,
        report: &mut SyncReport,
    ) -> Result<(StripeProduct, Vec<FieldDiff>), SyncError> {
        let stripe_product = match self.stripe.product(product).await? {
            Some(p) => p,
            None => {
                let key = sync_key(product, "product", rev, &fields.fingerprint());
                let p = self.stripe.create_product(product, fields, &key).await?;
                report.created.push("product".into());
                p
            }
        };
        let diffs = product_diffs(fields, &stripe_product);
        if drift_possible {
            report.drift.extend(diffs.iter().cloned());
        }
        Ok((stripe_product, diffs))
    }

    /// 2. The Price: kept, adopted or made at the catalog's amount; the mapped one as found.
    async fn price_step(
        &self,
        product: &ProductId,
        details: &ProductDetails,
        mapping: &StripeMapping,
        drift_possible: bool,
        report: &mut SyncReport,
    ) -> Result<(PriceId, Option<StripePrice>), SyncError> {
        let rev = details.revision;
        let mapped = match &mapping.price_id {
            Some(id) => self.stripe.price(id).await?,
            None => None,
        };
        let mut choice = choose_price(details, mapping, mapped.as_ref(), &[]);
        if choice == PriceChoice::Create {
            let active = self.stripe.active_prices(product).await?;
            choice = choose_price(details, mapping, mapped.as_ref(), &active);
        }
        let price_id = match choice {
            PriceChoice::Keep(id) | PriceChoice::Adopt(id) => id,
            PriceChoice::Create => {
                // Covers the mapped price's state: a price archived behind our back at the same
                // revision gets a new one instead of the replayed (archived) first answer.
                let seen = mapped
                    .as_ref()
                    .map_or_else(|| "none".to_owned(), |p| format!("{}:{}", p.id, p.active));
                let key = sync_key(
                    product,
                    "price",
                    rev,
                    &format!("{}|after:{seen}", details.price),
                );
                let p = self
                    .stripe
                    .create_price(product, &details.price, &key)
                    .await?;
                report.created.push("price".into());
                p.id
            }
        };
        if drift_possible
            && mapping.price_id.is_some()
            && mapping.price_id.as_ref() != Some(&price_id)
        {
            report.drift.push(FieldDiff {
                field: "price".into(),
                expected: format!(
                    "{} active at {}",
                    mapping.price_id.as_ref().map_or("-", PriceId::as_str),
                    details.price
                ),
                found: mapped.as_ref().map_or_else(
                    || "missing".to_owned(),
                    |p| format!("active={} amount={:?}", p.active, p.amount),
                ),
            });
        }
        Ok((price_id, mapped))
    }

    /// 3. The Product's fields and default price, in one update when anything differs.
    #[allow(clippy::too_many_arguments)]
    async fn product_update_step(
        &self,
        product: &ProductId,
        fields: &ProductFields,
        rev: u64,
        mut stripe_product: StripeProduct,
        diffs: &[FieldDiff],
        price_id: &PriceId,
        report: &mut SyncReport,
    ) -> Result<StripeProduct, SyncError> {
        if !diffs.is_empty() || stripe_product.default_price.as_ref() != Some(price_id) {
            // The key covers what we saw at Stripe too: a repair of a later Dashboard edit at
            // the same revision must not replay the first update's stored answer.
            let key = sync_key(
                product,
                "product-update",
                rev,
                &format!(
                    "{}|{price_id}|seen:{}:{:?}:{:?}",
                    fields.fingerprint(),
                    stripe_product.updated,
                    stripe_product.default_price,
                    diffs
                ),
            );
            stripe_product = self
                .stripe
                .update_product(product, fields, Some(price_id), &key)
                .await?;
            report.updated.push("product".into());
        }
        Ok(stripe_product)
    }

    /// 4. One Payment Link per store selling the product (made, kept or replaced; terms
    ///    recorded for a link made here); links of stores that no longer sell it retired.
    async fn links_step(
        &self,
        product: &ProductId,
        details: &ProductDetails,
        mapping: &StripeMapping,
        price_id: &PriceId,
        report: &mut SyncReport,
    ) -> Result<BTreeMap<StoreId, PaymentLinkId>, SyncError> {
        let mut links = mapping.links.clone();
        for store in &details.stores {
            if self.store.item(store, product).await?.is_none() {
                warn!(store = %store, product = %product, "no stock record in this store yet: no link made (create the stock record before the details; the reconciler's catalog check retries)");
                continue;
            }
            let current = match mapping.links.get(store) {
                Some(id) => self.stripe.link(id).await?,
                None => None,
            };
            let (link, made_here) = match plan_link(current.as_ref(), price_id) {
                LinkPlan::Keep(id) => {
                    self.attach_link(store, product, &details.name, &id, None)
                        .await?;
                    (id, false)
                }
                plan @ (LinkPlan::Create | LinkPlan::Replace(_)) => {
                    let replacing = match &plan {
                        LinkPlan::Replace(old) => Some(old),
                        _ => None,
                    };
                    let id = self
                        .new_link(
                            store,
                            product,
                            &details.name,
                            price_id,
                            replacing,
                            mapping.synced_revision,
                            report,
                        )
                        .await?;
                    (id, true)
                }
            };
            // A link made here sells this product alone, one unit per session (no adjustable
            // quantity, no optional items), at the catalog's price (`price_id` charges exactly
            // it): an order from it is decided without listing its line items. A kept link may
            // have been made or changed elsewhere (backfill adopts the merchant's): it gets no
            // terms, and its orders list their line items. A retry that finds the link made
            // (same idempotency key) records them then: the mapping is saved after this.
            if made_here && details.price.amount > 0 {
                let terms = stockbridge_domain::LinkTerms {
                    product_id: product.clone(),
                    unit_amount: details.price.amount,
                    currency: details.price.currency.clone(),
                    max_quantity: 1,
                };
                self.store.remember_link_terms(&link, &terms).await?;
            }
            links.insert(store.clone(), link);
        }
        // Stores that no longer sell it: their link is retired.
        for (store, link) in mapping.links.iter() {
            if !details.stores.contains(store) {
                self.retire_link(store, product, link).await?;
                links.remove(store);
                report.updated.push(format!("link_off:{store}"));
            }
        }
        Ok(links)
    }

    /// Drift put back: logged and recorded for the reconciler's report.
    async fn record_drift(
        &self,
        product: &ProductId,
        trigger: Trigger,
        report: &SyncReport,
    ) -> Result<(), SyncError> {
        let now = self.clock.now();
        for d in &report.drift {
            warn!(product = %product, field = %d.field, expected = %d.expected, found = %d.found, ?trigger, "catalog field changed at Stripe: put back");
            let discrepancy = Discrepancy {
                what: "catalog_field_at_stripe",
                subject: format!("{product}/{}", d.field),
                expected: d.expected.clone(),
                found: d.found.clone(),
                action: Repair::SyncProduct {
                    product: product.clone(),
                },
                cause: Some("changed at Stripe (Dashboard or API) after it matched the catalog"),
            };
            self.store.record(now, &discrepancy, true).await?;
        }
        Ok(())
    }
}

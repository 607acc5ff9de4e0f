//! Making Stripe match one product's current details ([`CatalogSync::sync_product`] and the
//! link switches that go with it).

use super::*;

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
    pub(super) async fn new_link(
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
    pub(super) async fn attach_link(
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
        // The level: a spread product's units are in its shards.
        if item.level().available == 0 && !item.deactivated_links.contains(link) {
            self.switch_off_sold_out(&item, link).await?;
        }
        Ok(())
    }

    pub(super) async fn switch_off_sold_out(
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
        // Already off by someone else: their choice, not stockbridge's to undo.
        if found.found_off_by_someone_else(SOLD_OUT_MESSAGE) {
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

    pub(super) async fn retire_link(
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
    pub(super) async fn forget_switched_off(
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

pub use crate::decode::CATALOG_EVENT_TYPES;

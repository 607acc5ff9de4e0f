//! The reconciler's catalog check: every product against Stripe, repaired.

use super::*;

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
                let diffs = self.differences(entry, price, product).await?;
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

    /// How a product and its mapped price at Stripe differ from the catalog entry, and the
    /// stores that sell it without a link (rare: their stock record came after the details;
    /// only stores with a stock record can get one).
    async fn differences(
        &self,
        entry: &crate::ports::CatalogEntry,
        price: &stockbridge_domain::StripePrice,
        product: &StripeProduct,
    ) -> Result<Vec<FieldDiff>, SyncError> {
        let mut diffs = product_agrees(entry, product);
        if !price.charges(&entry.details.price) {
            diffs.push(FieldDiff {
                field: "price".into(),
                expected: entry.details.price.to_string(),
                found: format!("{:?} {}", price.amount, price.currency),
            });
        }
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
        Ok(diffs)
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

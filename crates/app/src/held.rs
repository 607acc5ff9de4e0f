//! Held units as the orders say (`stockbridge stock held [--repair]`).
//!
//! An item's `held` is kept by every hold, sale and release since it existed. Versions before it
//! did not keep it, and during a deploy old and new functions run side by side: an old one
//! settling a new hold leaves `held` too high; a new one settling an old hold takes the units
//! from `held` that it never added. The truth is the sum of the lines of the orders still
//! `pending`; this compares it with each item and, asked to, sets `held` to it (`available`
//! unchanged: every version moved that one right). Each repair is conditional on the item's
//! version read *before* the orders were listed, so a hold made or settled meanwhile makes it
//! refuse (run it again) rather than write a count already stale.

use std::collections::BTreeMap;

use stockbridge_domain::{ProductId, StoreId, decide_held_repair};
use tracing::info;

use crate::effects::run_effects;
use crate::orders::Services;
use crate::ports::ListingStore;
use crate::ports::{Clock, Payments, StockPublisher, StoreError};

/// One item whose `held` differs from its pending orders.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HeldDrift {
    /// The product.
    pub product_id: ProductId,
    /// `held` as the item records it.
    pub recorded: u64,
    /// What its pending orders hold.
    pub pending: u64,
    /// Set right now (`--repair`); false when it changed meanwhile or was not asked.
    pub repaired: bool,
}

impl<Store: ListingStore, Publisher: StockPublisher, Stripe: Payments, Time: Clock>
    Services<Store, Publisher, Stripe, Time>
{
    /// Compares every item of `store` with its pending orders; with `repair`, sets the ones that
    /// differ.
    ///
    /// # Errors
    /// [`StoreError`] when the items or orders cannot be read.
    pub async fn check_held(
        &self,
        store: &StoreId,
        repair: bool,
    ) -> Result<Vec<HeldDrift>, StoreError> {
        let items = self.store.store_items(store).await?;
        let mut pending: BTreeMap<ProductId, u64> = BTreeMap::new();
        for order in self.store.pending_orders(Some(store)).await? {
            for line in &order.lines {
                *pending.entry(line.product_id.clone()).or_default() += line.quantity.get();
            }
        }
        let mut out = Vec::new();
        for item in &items {
            let want = pending.get(&item.product_id).copied().unwrap_or(0);
            let Some(decision) = decide_held_repair(item, want, "held repair", self.clock.now())
            else {
                continue;
            };
            let mut drift = HeldDrift {
                product_id: item.product_id.clone(),
                recorded: item.held,
                pending: want,
                repaired: false,
            };
            if repair && item.spread.is_some() {
                // Its units are in its shards: collected first, then repaired by the next run.
                crate::shards::collect(
                    &self.store,
                    &item.store_id,
                    &item.product_id,
                    self.clock.now(),
                )
                .await?;
            }
            if repair && item.spread.is_none() {
                match self.store.commit(&decision.write).await {
                    Ok(()) => {
                        let now = self.clock.now();
                        if let Err(e) = run_effects(
                            (&self.store, &self.publisher, &self.payments),
                            &*self.events,
                            &decision.effects,
                            now,
                        )
                        .await
                        {
                            tracing::warn!(product_id = %item.product_id, error = %e, "publishing the repaired level failed");
                        }
                        info!(product_id = %item.product_id, recorded = item.held, pending = want, "held repaired");
                        drift.repaired = true;
                    }
                    Err(StoreError::Conflict) => {} // changed meanwhile: run again
                    Err(e) => return Err(e),
                }
            }
            out.push(drift);
        }
        Ok(out)
    }
}

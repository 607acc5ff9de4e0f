//! Backfill (`stockbridge backfill`): imports an existing Stripe account's products, prices and
//! payment links into the catalog, keeping Stripe's ids.
//!
//! 1. Before anything else, the newest handled Stripe event becomes the replay cursor (unless
//!    one is stored already: an older cursor misses nothing), so every order paid while the
//!    backfill runs is replayed by the reconciler.
//! 2. Products, 100 per page: each with an active default price becomes a catalog product
//!    (details + a mapping that says Stripe already matches, so the sync calls nothing) and a
//!    stock record in the store. Products already in the catalog are left as they are.
//! 3. Payment links, 100 per page: each link selling one catalog product is put on that
//!    product's stock record in its store (`metadata.store_id`, else the backfill's store).
//!
//! Progress is a checkpoint (phase and the last id done) saved after every page: an interrupted
//! run continues where it stopped, and re-doing a page changes nothing. Every Stripe call goes
//! through the adapter's rate limit.

use stockbridge_domain::{
    PaymentLinkId, ProductDetails, ProductId, StoreId, StripeMapping, StripeProduct,
};

use crate::orders::Services;
use crate::ports::{
    CatalogStore, Clock, CursorStore, EventLog, InventoryStore, Payments, PaymentsError,
    StockPublisher, StoreError, StripeCatalog,
};
use crate::stock_admin::{ImportItem, StockError};

/// The checkpoint's name.
pub const CHECKPOINT: &str = "backfill";

/// Where a backfill stands (saved as JSON in the checkpoint).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackfillState {
    /// `products`, `links` or `done`.
    pub phase: String,
    /// The last product or link id done in this phase.
    pub after: Option<String>,
    /// The replay cursor set at the start (`None`: one was there already, or no event yet).
    pub cursor: Option<String>,
    /// Products imported.
    pub products: u64,
    /// Products already in the catalog, left alone.
    pub existing: u64,
    /// Products skipped (no active one-time default price).
    pub skipped: u64,
    /// Links attached to a product.
    pub links: u64,
    /// Links not attached (several products, or a product not in the catalog).
    pub links_skipped: u64,
}

/// Options of a backfill.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// The store the products are sold in (a link's `metadata.store_id` wins for its link).
    pub store: StoreId,
    /// Stock of new items when the product's `metadata.stock` does not say.
    pub default_stock: u64,
    /// Forget an earlier backfill's progress and start again.
    pub restart: bool,
}

/// Why a backfill stopped. Run it again to continue.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// The store failed.
    #[error("the store: {0}")]
    Store(#[from] StoreError),
    /// Stripe failed.
    #[error("Stripe: {0}")]
    Stripe(#[from] PaymentsError),
    /// Creating a stock record failed.
    #[error("stock record: {0}")]
    Stock(#[from] StockError),
    /// The checkpoint is unreadable.
    #[error("the backfill checkpoint is corrupt ({0}); run with --restart")]
    Checkpoint(String),
}

impl<
    Store: InventoryStore + CatalogStore + CursorStore,
    Publisher: StockPublisher,
    Stripe: Payments + StripeCatalog + EventLog,
    Time: Clock,
> Services<Store, Publisher, Stripe, Time>
{
    /// Runs (or continues) a backfill. `progress` is called after every page with the state.
    ///
    /// # Errors
    /// [`BackfillError`]; progress so far is kept and the next run continues from it.
    pub async fn backfill(
        &self,
        options: &BackfillOptions,
        mut progress: impl FnMut(&BackfillState),
    ) -> Result<BackfillState, BackfillError> {
        let saved = if options.restart {
            None
        } else {
            self.store.checkpoint(CHECKPOINT).await?
        };
        let mut state = match saved {
            Some(json) => serde_json::from_str::<BackfillState>(&json)
                .map_err(|e| BackfillError::Checkpoint(e.to_string()))?,
            None => {
                let cursor = self.set_cursor_before_start().await?;
                let state = BackfillState {
                    phase: "products".into(),
                    cursor,
                    ..BackfillState::default()
                };
                self.save(&state).await?;
                state
            }
        };
        progress(&state);
        while state.phase == "products" {
            let after = state
                .after
                .as_deref()
                .map(ProductId::parse)
                .transpose()
                .map_err(|e| BackfillError::Checkpoint(e.to_string()))?;
            let page = self.payments.products_page(after.as_ref()).await?;
            for (product, price) in &page.items {
                self.import_product(options, product, price.as_ref(), &mut state)
                    .await?;
            }
            state.after = page.items.last().map(|(p, _)| p.id.to_string());
            if !page.has_more || page.items.is_empty() {
                state.phase = "links".into();
                state.after = None;
            }
            self.save(&state).await?;
            progress(&state);
        }
        while state.phase == "links" {
            let after = state
                .after
                .as_deref()
                .map(PaymentLinkId::parse)
                .transpose()
                .map_err(|e| BackfillError::Checkpoint(e.to_string()))?;
            let page = self.payments.links_page(after.as_ref()).await?;
            for link in &page.items {
                self.attach_link(options, link, &mut state).await?;
            }
            state.after = page.items.last().map(|l| l.id.to_string());
            if !page.has_more || page.items.is_empty() {
                state.phase = "done".into();
                state.after = None;
            }
            self.save(&state).await?;
            progress(&state);
        }
        Ok(state)
    }

    async fn save(&self, state: &BackfillState) -> Result<(), StoreError> {
        let json = serde_json::to_string(state).map_err(|e| StoreError::Other(Box::new(e)))?;
        self.store.save_checkpoint(CHECKPOINT, &json).await
    }

    async fn set_cursor_before_start(&self) -> Result<Option<String>, BackfillError> {
        if self.store.cursor().await?.is_some() {
            return Ok(None);
        }
        // Events from now on are replayed by the reconciler; what came before is in the counts
        // the backfill imports.
        let cursor = crate::ports::Cursor {
            created: self.clock.now().0.div_euclid(1000),
            event_id: None,
        };
        match self.store.advance_cursor(None, &cursor).await {
            // Set by a reconciler run meanwhile: that one is as good.
            Ok(()) | Err(StoreError::Conflict) => Ok(Some(crate::message::rfc3339(
                stockbridge_domain::Timestamp(cursor.created * 1000),
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn import_product(
        &self,
        options: &BackfillOptions,
        product: &StripeProduct,
        price: Option<&stockbridge_domain::StripePrice>,
        state: &mut BackfillState,
    ) -> Result<(), BackfillError> {
        let Some((price, money)) = price.and_then(|p| {
            let money = stockbridge_domain::Money::new(p.amount?, &p.currency).ok()?;
            p.active.then_some((p, money))
        }) else {
            state.skipped += 1;
            return Ok(());
        };
        if self.store.entry(&product.id).await?.is_some() {
            state.existing += 1;
        } else {
            let details = ProductDetails {
                product_id: product.id.clone(),
                name: product.name.clone(),
                description: product.description.clone().filter(|d| !d.is_empty()),
                images: product.images.clone(),
                price: money.clone(),
                active: product.active,
                metadata: product.metadata.clone(),
                stores: [options.store.clone()].into_iter().collect(),
                revision: 1,
                updated_at: self.clock.now(),
            };
            // The mapping first (the pipe ignores it): when the details' stream message reaches
            // the sync, Stripe already matches and it does nothing — even after a crash here.
            let mapping = StripeMapping {
                price_id: Some(price.id.clone()),
                price: Some(money),
                metadata_keys: product.metadata.keys().cloned().collect(),
                synced_revision: 1,
                stripe_updated: Some(product.updated),
                version: 1,
                ..StripeMapping::default()
            };
            match self.store.save_mapping(&product.id, &mapping, 0).await {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
            match self.store.put_details(&details, None).await {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
            state.products += 1;
        }
        let stock = product
            .metadata
            .get("stock")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(options.default_stock);
        if self
            .store
            .item(&options.store, &product.id)
            .await?
            .is_none()
        {
            self.import_item(
                &ImportItem {
                    store_id: options.store.clone(),
                    product_id: product.id.clone(),
                    name: product.name.clone(),
                    stock,
                    payment_links: None,
                },
                false,
                "backfill",
            )
            .await?;
        }
        Ok(())
    }

    async fn attach_link(
        &self,
        options: &BackfillOptions,
        link: &stockbridge_domain::StripeLink,
        state: &mut BackfillState,
    ) -> Result<(), BackfillError> {
        let [product] = link.products.as_slice() else {
            state.links_skipped += 1;
            return Ok(());
        };
        let Some(entry) = self.store.entry(product).await? else {
            state.links_skipped += 1;
            return Ok(());
        };
        // Only a link that sells now, at the product's current price: an inactive or old-price
        // link is history — a restock would switch it on and sell at an old price.
        if !link.active || entry.mapping.price_id.as_ref() != link.prices.first() {
            state.links_skipped += 1;
            return Ok(());
        }
        let store = link
            .store_id
            .clone()
            .unwrap_or_else(|| options.store.clone());
        let Some(item) = self.store.item(&store, product).await? else {
            state.links_skipped += 1;
            return Ok(());
        };
        // Written even when the link is on the item already: it also records the link's store
        // (for sessions that carry none), which items attached by an earlier version lack.
        let mut links = item.payment_links.clone();
        if !links.contains(&link.id) {
            links.push(link.id.clone());
        }
        self.store
            .update_item_details(&store, product, &item.name, &links)
            .await?;
        // A link on the mapped price is the store's link from now on.
        let mut mapping = entry.mapping.clone();
        if let std::collections::btree_map::Entry::Vacant(slot) = mapping.links.entry(store) {
            slot.insert(link.id.clone());
            mapping.version += 1;
            match self
                .store
                .save_mapping(product, &mapping, entry.mapping.version)
                .await
            {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        state.links += 1;
        Ok(())
    }
}

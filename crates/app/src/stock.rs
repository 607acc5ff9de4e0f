//! Operator stock changes (`stockbridge stock set|adjust`): compare-and-set on the item's
//! version, a ledger entry, the published level, and links switched off at 0 or back on at
//! restock.

use stockbridge_domain::{
    ProductId, StockChange, StockChangeError, StockLevel, StoreId, decide_stock_change,
};

use crate::effects::{EffectError, run_effects};
use crate::inventory::Inventory;
use crate::ports::{Clock, InventoryStore, Payments, StockPublisher, StoreError};
use crate::retry::backoff;

/// Why a stock change failed.
#[derive(Debug, thiserror::Error)]
pub enum StockError {
    /// No such item.
    #[error(
        "product {product_id} is not in the catalog of store {store_id}; import it first with `stockbridge catalog import`"
    )]
    NotFound {
        /// The store.
        store_id: StoreId,
        /// The product.
        product_id: ProductId,
    },
    /// The caller's expected version is not the current one.
    #[error(
        "the stock of {product_id} changed (version {found}, you expected {expected}); read it again with `stockbridge stock show` and retry"
    )]
    VersionMismatch {
        /// The product.
        product_id: ProductId,
        /// What the caller expected.
        expected: u64,
        /// The current version.
        found: u64,
    },
    /// The change is invalid.
    #[error(transparent)]
    Invalid(#[from] StockChangeError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The change is committed but publishing or switching links failed.
    #[error(
        "the new level is committed but a side effect failed (run the command again to retry it): {0}"
    )]
    Effect(#[from] EffectError),
}

impl<S, P, Y, C> Inventory<S, P, Y, C>
where
    S: InventoryStore,
    P: StockPublisher,
    Y: Payments,
    C: Clock,
{
    /// Sets or adjusts a level with compare-and-set. With `expected_version`, the change applies
    /// only if the item is still at that version; without, a concurrent change is re-read and the
    /// change decided again.
    ///
    /// # Errors
    /// [`StockError`].
    pub async fn change_stock(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        change: StockChange,
        expected_version: Option<u64>,
        actor: &str,
    ) -> Result<StockLevel, StockError> {
        let mut attempt = 0;
        loop {
            let item = self
                .store
                .item(store_id, product_id)
                .await?
                .ok_or_else(|| StockError::NotFound {
                    store_id: store_id.clone(),
                    product_id: product_id.clone(),
                })?;
            if let Some(expected) = expected_version.filter(|v| *v != item.version) {
                return Err(StockError::VersionMismatch {
                    product_id: product_id.clone(),
                    expected,
                    found: item.version,
                });
            }
            let now = self.clock.now();
            let decision = decide_stock_change(&item, change, actor, now)?;
            match self.store.commit(&decision.write).await {
                Ok(()) => {
                    run_effects(
                        &self.store,
                        &self.publisher,
                        &self.payments,
                        &decision.effects,
                        now,
                    )
                    .await?;
                    return Ok(decision
                        .effects
                        .publish
                        .first()
                        .cloned()
                        .unwrap_or_else(|| item.level()));
                }
                Err(StoreError::Conflict)
                    if expected_version.is_none() && attempt < self.config.max_attempts =>
                {
                    attempt += 1;
                    backoff(attempt).await;
                }
                Err(StoreError::Conflict) => {
                    let found = self
                        .store
                        .item(store_id, product_id)
                        .await?
                        .map_or(0, |i| i.version);
                    return Err(StockError::VersionMismatch {
                        product_id: product_id.clone(),
                        expected: expected_version.unwrap_or(item.version),
                        found,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Re-publishes an item's current level (idempotent; used after imports and by operators).
    ///
    /// # Errors
    /// [`StockError`].
    pub async fn republish(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
    ) -> Result<StockLevel, StockError> {
        let item = self
            .store
            .item(store_id, product_id)
            .await?
            .ok_or_else(|| StockError::NotFound {
                store_id: store_id.clone(),
                product_id: product_id.clone(),
            })?;
        let level = item.level();
        self.publisher
            .publish(&level)
            .await
            .map_err(EffectError::from)?;
        Ok(level)
    }
}

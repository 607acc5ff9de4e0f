//! Operator stock changes (`stockbridge stock set|adjust`): compare-and-set on the item's
//! version, a ledger entry, the published level, and links switched off at 0 or back on at
//! restock.

use stockbridge_domain::{
    CatalogItem, PaymentLinkId, ProductId, StockChange, StockChangeError, StockLevel, StoreId,
    decide_new_item, decide_stock_change,
};

use crate::effects::{EffectError, run_effects};
use crate::orders::Services;
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
    /// The item kept changing under us; nothing was written.
    #[error(
        "the stock of {product_id} kept changing under concurrent orders; nothing was written, try again"
    )]
    Contention {
        /// The product.
        product_id: ProductId,
    },
    /// The change is invalid.
    #[error(transparent)]
    Invalid(#[from] StockChangeError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The change is committed but publishing or switching links failed.
    #[error(
        "the new level is committed but a side effect failed (the next change of this item or the reconciler repeats it): {0}"
    )]
    Effect(#[from] EffectError),
    /// An operation id was reused for another change.
    #[error(
        "operation {operation} was already used for another change ({recorded}): use a new --op-id"
    )]
    OperationReused {
        /// The id.
        operation: String,
        /// What it was recorded for.
        recorded: String,
    },
}

impl<Store: InventoryStore, Publisher: StockPublisher, Stripe: Payments, Time: Clock>
    Services<Store, Publisher, Stripe, Time>
{
    /// The item, or [`StockError::NotFound`] saying how to create it. A spread product is
    /// collected first: every change here writes the item.
    async fn existing_item(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
    ) -> Result<CatalogItem, StockError> {
        crate::shards::collect(&self.store, store_id, product_id, self.clock.now()).await?;
        self.store
            .item(store_id, product_id)
            .await?
            .ok_or_else(|| StockError::NotFound {
                store_id: store_id.clone(),
                product_id: product_id.clone(),
            })
    }

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
        self.apply_operation(store_id, product_id, change, expected_version, actor, None)
            .await
            .map(|(level, _)| level)
    }

    /// [`Self::change_stock`] as an operator's operation with an id: the id is recorded with the
    /// change, in the same transaction, so running the same operation again (after a timeout or
    /// an unclear error) applies nothing and answers `true` ("already applied") with the level.
    ///
    /// # Errors
    /// [`StockError`].
    pub async fn apply_operation(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        change: StockChange,
        expected_version: Option<u64>,
        actor: &str,
        operation: Option<&str>,
    ) -> Result<(StockLevel, bool), StockError> {
        let what = format!("{store_id}/{product_id}: {change:?}");
        // Recorded already: the same change is applied (answer so); another one under the same
        // id is a mistake the operator must see.
        let already = |recorded: String, item: &stockbridge_domain::CatalogItem| {
            if recorded == what {
                Ok((item.level(), true))
            } else {
                Err(StockError::OperationReused {
                    operation: operation.unwrap_or_default().to_owned(),
                    recorded,
                })
            }
        };
        if let Some(op) = operation
            && let Some(recorded) = self.store.operation_recorded(op).await?
        {
            return already(recorded, &self.existing_item(store_id, product_id).await?);
        }
        let mut attempt = 0;
        loop {
            let item = self.existing_item(store_id, product_id).await?;
            if let Some(expected) = expected_version.filter(|v| *v != item.version) {
                return Err(StockError::VersionMismatch {
                    product_id: product_id.clone(),
                    expected,
                    found: item.version,
                });
            }
            let now = self.clock.now();
            let mut decision = decide_stock_change(&item, change, actor, now)?;
            if let Some(op) = operation {
                decision.write.operation = Some(stockbridge_domain::Operation {
                    id: op.to_owned(),
                    what: what.clone(),
                });
                for e in &mut decision.write.ledger {
                    e.operation = Some(op.to_owned());
                }
            }
            match self.store.commit(&decision.write).await {
                Ok(()) => {
                    run_effects(
                        (&self.store, &self.publisher, &self.payments),
                        &*self.events,
                        &decision.effects,
                        now,
                    )
                    .await?;
                    let level = decision.effects.publish.first().cloned();
                    return Ok((level.unwrap_or_else(|| item.level()), false));
                }
                Err(StoreError::Conflict) => {
                    // The conflict may be this very operation, committed by an earlier run
                    // whose answer was lost.
                    if let Some(op) = operation
                        && let Some(recorded) = self.store.operation_recorded(op).await?
                    {
                        return already(recorded, &self.existing_item(store_id, product_id).await?);
                    }
                    if expected_version.is_none() && attempt < self.config.max_attempts {
                        attempt += 1;
                        backoff(attempt).await;
                        continue;
                    }
                    return Err(match expected_version {
                        Some(expected) => {
                            let found = self
                                .store
                                .item(store_id, product_id)
                                .await?
                                .map_or(0, |i| i.version);
                            StockError::VersionMismatch {
                                product_id: product_id.clone(),
                                expected,
                                found,
                            }
                        }
                        None => StockError::Contention {
                            product_id: product_id.clone(),
                        },
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// One catalog item to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportItem {
    /// The store.
    pub store_id: StoreId,
    /// The product (its Stripe product id).
    pub product_id: ProductId,
    /// Display name.
    pub name: String,
    /// Units in stock.
    pub stock: u64,
    /// Payment Links selling it (`None`: keep the item's links, e.g. the ones the catalog sync
    /// made).
    pub payment_links: Option<Vec<PaymentLinkId>>,
}

/// What an import did to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    /// A new item.
    Created,
    /// Name and links updated; the stock already matched or was set (`set_stock`).
    Updated,
    /// Name and links updated; the stock differs from the file and was left alone, because
    /// orders move it after the file was written.
    StockKept {
        /// The level in the catalog.
        current: u64,
        /// The level in the file.
        file: u64,
    },
}

impl<Store: InventoryStore, Publisher: StockPublisher, Stripe: Payments, Time: Clock>
    Services<Store, Publisher, Stripe, Time>
{
    /// Imports one item. A new item is created with its stock (at 0 its links are switched off);
    /// an existing item gets its name and links updated, and its stock only with `set_stock`,
    /// through the same compare-and-set as `change_stock` against the version read here — a
    /// re-import must never put back units sold since the file was written.
    ///
    /// # Errors
    /// [`StockError`].
    pub async fn import_item(
        &self,
        row: &ImportItem,
        set_stock: bool,
        actor: &str,
    ) -> Result<Imported, StockError> {
        if set_stock {
            // Its stock is written: a spread product is collected first.
            crate::shards::collect(
                &self.store,
                &row.store_id,
                &row.product_id,
                self.clock.now(),
            )
            .await?;
        }
        let existing = match self.store.item(&row.store_id, &row.product_id).await? {
            Some(item) => item,
            None => {
                let now = self.clock.now();
                let new = decide_new_item(
                    row.store_id.clone(),
                    row.product_id.clone(),
                    row.name.clone(),
                    row.stock,
                    row.payment_links.clone().unwrap_or_default(),
                    actor,
                    now,
                )?;
                match self.store.create_item(&new.item, &new.entry).await {
                    Ok(()) => {
                        run_effects(
                            (&self.store, &self.publisher, &self.payments),
                            &*self.events,
                            &new.effects,
                            now,
                        )
                        .await?;
                        return Ok(Imported::Created);
                    }
                    // Created concurrently: treat it as existing.
                    Err(StoreError::Conflict) => {
                        self.existing_item(&row.store_id, &row.product_id).await?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        // Without links in the row and with the same name there is nothing to write (and writing
        // the links read above could undo a link the catalog sync just attached).
        if row.payment_links.is_some() || row.name != existing.name {
            self.store
                .update_item_details(
                    &row.store_id,
                    &row.product_id,
                    &row.name,
                    row.payment_links
                        .as_ref()
                        .unwrap_or(&existing.payment_links),
                )
                .await?;
        }
        // The file counts what is on hand, held units included.
        if existing.on_hand() == row.stock {
            return Ok(Imported::Updated);
        }
        if !set_stock {
            return Ok(Imported::StockKept {
                current: existing.on_hand(),
                file: row.stock,
            });
        }
        self.change_stock(
            &row.store_id,
            &row.product_id,
            StockChange::Set(row.stock),
            Some(existing.version),
            actor,
        )
        .await?;
        Ok(Imported::Updated)
    }
}

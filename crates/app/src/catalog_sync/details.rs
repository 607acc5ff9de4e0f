//! The merchandising fields of a product, as `stockbridge catalog import` writes them.

use super::*;

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

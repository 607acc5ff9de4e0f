//! The merchandising catalog and Stripe's catalog objects (the catalog sync).

use super::*;

/// One page of a Stripe list (`limit=100`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in Stripe's order.
    pub items: Vec<T>,
    /// Whether more follow (pass the last item's id as `starting_after`).
    pub has_more: bool,
}

/// A product's catalog record and its Stripe mapping, read together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The merchandising details.
    pub details: ProductDetails,
    /// What it maps to at Stripe (default: nothing yet).
    pub mapping: StripeMapping,
}

/// The merchandising catalog: product details, their Stripe mapping, and named checkpoints.
pub trait CatalogStore: Send + Sync {
    /// A product's details and mapping (strongly consistent).
    fn entry(
        &self,
        product: &ProductId,
    ) -> impl Future<Output = Result<Option<CatalogEntry>, StoreError>> + Send;

    /// Several products' entries (absent ones are missing from the map).
    fn entries(
        &self,
        products: &[ProductId],
    ) -> impl Future<Output = Result<HashMap<ProductId, CatalogEntry>, StoreError>> + Send;

    /// Writes details: creates them when `expected_revision` is `None`, else replaces them if
    /// the stored revision is still `expected_revision`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the condition fails.
    fn put_details(
        &self,
        details: &ProductDetails,
        expected_revision: Option<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes a mapping if the stored one still has `expected_version` (0: none stored).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when another writer got there first.
    fn save_mapping(
        &self,
        product: &ProductId,
        mapping: &StripeMapping,
        expected_version: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One page of one segment of a parallel scan over every product's entry; pass the returned
    /// position back to continue (`None`: the segment is done).
    fn scan_entries(
        &self,
        segment: u32,
        segments: u32,
        start: Option<String>,
    ) -> impl Future<Output = Result<(Vec<CatalogEntry>, Option<String>), StoreError>> + Send;

    /// A named checkpoint (backfill progress, last reconcile summary).
    fn checkpoint(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Stores a named checkpoint.
    fn save_checkpoint(
        &self,
        name: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The Stripe catalog calls: Products, Prices and Payment Links.
pub trait StripeCatalog: Send + Sync {
    /// A Product (`None`: Stripe does not know it).
    fn product(
        &self,
        id: &ProductId,
    ) -> impl Future<Output = Result<Option<StripeProduct>, PaymentsError>> + Send;

    /// Creates a Product with our id.
    fn create_product(
        &self,
        id: &ProductId,
        fields: &ProductFields,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<StripeProduct, PaymentsError>> + Send;

    /// Sets a Product's catalog-owned fields (and its default price).
    fn update_product(
        &self,
        id: &ProductId,
        fields: &ProductFields,
        default_price: Option<&PriceId>,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<StripeProduct, PaymentsError>> + Send;

    /// A Price (`None`: Stripe does not know it).
    fn price(
        &self,
        id: &PriceId,
    ) -> impl Future<Output = Result<Option<StripePrice>, PaymentsError>> + Send;

    /// The product's active prices.
    fn active_prices(
        &self,
        product: &ProductId,
    ) -> impl Future<Output = Result<Vec<StripePrice>, PaymentsError>> + Send;

    /// Creates a one-time Price.
    fn create_price(
        &self,
        product: &ProductId,
        money: &Money,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<StripePrice, PaymentsError>> + Send;

    /// Archives a Price (`active=false`): it can no longer be used for new purchases.
    fn archive_price(&self, id: &PriceId)
    -> impl Future<Output = Result<(), PaymentsError>> + Send;

    /// A Payment Link with its prices (`None`: Stripe does not know it).
    fn link(
        &self,
        id: &PaymentLinkId,
    ) -> impl Future<Output = Result<Option<StripeLink>, PaymentsError>> + Send;

    /// Creates a Payment Link selling one unit of `price`, with `metadata.store_id` and
    /// `metadata.product_id`.
    fn create_link(
        &self,
        price: &PriceId,
        store: &StoreId,
        product: &ProductId,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<StripeLink, PaymentsError>> + Send;

    /// One page (100) of active prices, each with its Product, after `starting_after`.
    fn prices_page(
        &self,
        starting_after: Option<&PriceId>,
    ) -> impl Future<Output = Result<Page<(StripePrice, StripeProduct)>, PaymentsError>> + Send;

    /// One page (100) of Products, each with its default Price if any, after `starting_after`.
    fn products_page(
        &self,
        starting_after: Option<&ProductId>,
    ) -> impl Future<Output = Result<Page<(StripeProduct, Option<StripePrice>)>, PaymentsError>> + Send;

    /// One page (100) of Payment Links with their prices, after `starting_after`.
    fn links_page(
        &self,
        starting_after: Option<&PaymentLinkId>,
    ) -> impl Future<Output = Result<Page<StripeLink>, PaymentsError>> + Send;
}

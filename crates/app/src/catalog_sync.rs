//! Catalog -> Stripe sync: the use case behind the `catalog-sync` Lambda (and the reconciler's
//! repair of catalog fields).
//!
//! Every message — a catalog change from the table's stream, or a Stripe `product.*`,
//! `price.*`, `payment_link.*` event — only names a product. The sync always reads the product's
//! CURRENT details and makes Stripe match them, so messages can arrive twice, late or out of
//! order: the result is the same. Each Stripe write carries an idempotency key derived from the
//! change ([`sync_key`]), and the mapping is written last with compare-and-set, so a crash
//! between any two steps is repaired by the next delivery without creating anything twice.
//!
//! Layout: [`message`] decodes what the queue hands over and runs it; [`sync`] makes Stripe
//! match one product (its numbered steps in `steps.rs`); [`details`] writes the merchandising
//! fields the CLI imports; [`check`] is the reconciler's catalog check.

use stockbridge_domain::invariants::{Discrepancy, Repair};
use stockbridge_domain::{
    CatalogItem, FieldDiff, PaymentLinkId, PriceId, ProductId, StoreId, StripeMapping,
    StripeProduct, WriteSet, forget_links_off, product_diffs, product_fields, record_links_off,
    sync_key,
};
use tracing::{info, warn};

mod check;
mod details;
mod message;
mod steps;
mod sync;

pub use check::*;
pub use details::*;
pub use message::*;
pub use sync::*;

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

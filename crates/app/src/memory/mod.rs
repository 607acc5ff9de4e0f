//! In-memory implementations of every port, for handler tests and benchmarks. They keep the
//! same contracts as the real adapters: `commit` is all-or-nothing with the same conditions, and
//! refunds honour idempotency keys.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use stockbridge_domain::{
    CatalogItem, Items, LedgerEntry, OrderId, OrderRecord, OrderWrite, PaymentLinkId, ProductId,
    RefundId, RefundRequest, StockLevel, StoreId, Timestamp, WriteSet,
    take::{StockTake, TakeMark},
};

use crate::ports::{
    Clock, InventoryStore, Payments, PaymentsError, PublishError, SessionLine, StockPublisher,
    StoreError,
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

mod alerts;
mod catalog;
mod clock;
mod dead_letters;
mod deliveries;
mod housekeeping;
mod payments;
mod publisher;
mod reconcile;
mod shards;
mod store;
mod waitlist;

pub use alerts::*;
pub use catalog::*;
pub use clock::*;
pub use dead_letters::*;
pub use deliveries::*;
pub use payments::*;
pub use publisher::*;
pub use reconcile::*;
pub use shards::MemoryShard;
pub use store::*;
pub use waitlist::MemoryWaitlist;

/// A stock item for tests: `available` units, no links, version 1, managed since the epoch.
pub fn test_item(store: &StoreId, product: &ProductId, name: &str, available: u64) -> CatalogItem {
    CatalogItem {
        store_id: store.clone(),
        product_id: product.clone(),
        name: name.to_owned(),
        available,
        held: 0,
        version: 1,
        payment_links: vec![],
        deactivated_links: vec![],
        updated_at: Timestamp(0),
        managed_since: Timestamp(0),
        unrecorded_take: None,
        spread: None,
        low_stock: None,
    }
}

/// The inventory configuration the handler tests use: Stripe's partner event source, test
/// mode, the store `default`, 3 attempts.
pub fn inventory_config() -> crate::orders::InventoryConfig {
    crate::orders::InventoryConfig {
        filter: crate::decode::EventFilter {
            source_prefix: "aws.partner/stripe.com/".into(),
            livemode: false,
        },
        default_store: StoreId::parse("default").expect("a valid store id"),
        max_attempts: 3,
    }
}

//! Ports: one small trait per capability, one file per group. Adapters live in their own
//! crates; every name is re-exported here (`crate::ports::InventoryStore`, ...).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use stockbridge_domain::after_sale::ReturnsPolicy;
use stockbridge_domain::{
    CatalogItem, ChargeId, Items, LedgerEntry, Money, OrderId, OrderRecord, PaymentIntentId,
    PaymentLinkId, PriceId, ProductDetails, ProductFields, ProductId, RefundId, RefundRequest,
    StockLevel, StoreId, StripeEventId, StripeLink, StripeMapping, StripePrice, StripeProduct,
    Timestamp, WriteSet,
    take::{StockTake, TakeMark},
};

mod alerts;
mod catalog;
mod clock;
mod counters;
mod dead_letters;
mod deliveries;
mod notify;
mod parking;
mod payments;
mod publish;
mod reconcile;
mod shards;
mod store;
mod waitlist;

pub use alerts::*;
pub use catalog::*;
pub use clock::*;
pub use counters::*;
pub use dead_letters::*;
pub use deliveries::*;
pub use notify::*;
pub use parking::*;
pub use payments::*;
pub use publish::*;
pub use reconcile::*;
pub use shards::*;
pub use store::*;
pub use waitlist::*;

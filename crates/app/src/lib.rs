//! The application layer of stockbridge: ports, event decoding and use cases.
//!
//! Data flows one way: a raw EventBridge envelope comes in, [`events`] decodes the few fields we
//! use, [`inventory::Services`] loads state through the [`ports`], asks the domain for a
//! decision, commits it in one conditional transaction and runs the idempotent effects.
//!
//! # Layout
//! - [`ports`]: the small traits adapters implement, one file per group (`store`:
//!   `InventoryStore`, `ControlStore`; `publish`: `StockPublisher`; `payments`: `Payments`;
//!   `catalog`: `CatalogStore`, `StripeCatalog`; `reconcile`: what the reconciler reads and
//!   records; `shards`: `ShardStore` (spread products' shard items); `dead_letters`: `DeadLetters`; `counters`, `clock`, `notify`; `forwarding`: each
//!   through an `Arc`).
//! - [`events`]: tolerant decoding of Stripe snapshot events inside EventBridge envelopes.
//! - [`holds`]: the checkout API with reservations (hold, PaymentIntent events, sweeper).
//! - [`held`]: held units compared with the pending orders, and repaired.
//! - [`inventory`]: the use case behind the `inventory` Lambda (its hot path's take: `takes.rs`).
//! - [`shards`]: sharded stock for a very hot product (spread, collect, the take from a shard).
//! - [`stock`]: operator stock changes and catalog imports (the CLI's `stock set|adjust`,
//!   `catalog import`).
//! - [`message`]: the stock topic and message contract storefronts rely on.
//! - [`metrics`]: CloudWatch embedded-metric-format lines.
//! - [`storefront`]: the catalog document a static storefront loads.
//! - [`recovery`]: replaying missed Stripe events from `/v1/events`.
//! - [`reconcile`]: invariant checks and repairs (links active iff in stock).
//! - [`parking`]: replayed events and repairs that failed, set aside with their reason.
//! - [`backfill`]: importing an existing Stripe account into the catalog.
//! - [`catalog`]: catalog -> Stripe sync (products, prices, payment links) and drift repair.
//! - [`effects`]: running a decision's side effects.
//! - [`broadcast`]: the `broadcaster` Lambda: levels published from the table's stream.
//! - `memory` (feature `memory`): in-memory ports for tests and benchmarks.

pub mod backfill;
pub mod broadcast;
pub mod catalog;
pub mod effects;
pub mod events;
pub mod held;
pub mod holds;
pub mod inventory;
pub mod message;
pub mod metrics;
pub mod parking;
pub mod ports;
pub mod reconcile;
pub mod recovery;
pub mod shards;
pub mod stock;
pub mod storefront;
mod takes;

#[cfg(feature = "memory")]
pub mod memory;

mod retry;

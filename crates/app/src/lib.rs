//! The application layer of stockbridge: ports, event decoding and use cases.
//!
//! Data flows one way: a raw EventBridge envelope comes in, [`decode`] reads the few fields we
//! use, [`orders::Services`] loads state through the [`ports`], asks the domain for a
//! decision, commits it in one conditional transaction and runs the idempotent effects.
//! Every use case is a method of [`orders::Services`] (the store, the publisher, Stripe and the
//! clock) or a function over the ports; the table says where each entrypoint starts.
//!
//! # Entrypoints (held true by `tests/api/entrypoints_in_docs.rs`)
//!
//! | Lambda or CLI command | module | entry |
//! | --- | --- | --- |
//! | `inventory` Lambda | [`inbound`] | `Services::handle_envelope` |
//! | `webhook` Lambda | [`inbound`] | `Services::deliver` |
//! | `checkout` Lambda (`POST /checkout`) | [`reservations`] | `Services::reserve` |
//! | `sweeper` Lambda | [`reservations`] | `Services::sweep_expired_holds_until` |
//! | `catalog-sync` Lambda | [`catalog_sync`] | `CatalogSync::handle_message` |
//! | `reconciler` Lambda, `stockbridge reconcile` | [`reconcile`] | `run` |
//! | `broadcaster` Lambda, `stockbridge stock publish` | [`broadcast`] | `broadcast_levels` |
//! | `stockbridge stock set\|adjust` | [`stock_admin`] | `Services::apply_operation` |
//! | `stockbridge catalog import` | [`stock_admin`] | `Services::import_item` |
//! | `stockbridge catalog export` | [`storefront`] | `export_catalog` |
//! | `stockbridge stock shard` | [`shards`] | `spread` |
//! | `stockbridge stock held` | [`held`] | `Services::check_held` |
//! | `stockbridge backfill` | [`backfill`] | `Services::backfill` |
//! | `checkout` Lambda (`POST /waitlist`) | [`waitlist`] | `join` |
//! | `broadcaster` Lambda (a merchant's restock) | [`waitlist`] | `announce_restock` |
//!
//! # Layout
//! - [`ports`]: the small traits adapters implement, one file per group (`store`:
//!   `InventoryStore`, `ControlStore`; `publish`: `StockPublisher`; `payments`: `Payments`;
//!   `catalog`: `CatalogStore`, `StripeCatalog`; `reconcile`: what the reconciler reads and
//!   records; `shards`: `ShardStore` (spread products' shard items); `dead_letters`:
//!   `DeadLetters`; `counters`, `clock`, `notify`). No port is implemented for `Arc<T>`: the
//!   in-memory fakes are cheap-`Clone` handles, and the real adapters are `Clone` already.
//! - [`decode`]: tolerant decoding of what comes in: Stripe snapshot events inside EventBridge
//!   envelopes (`stripe_event`), the checkout API's request (`checkout_request`), the
//!   catalog-sync queue's messages (`sync_message`).
//! - [`inbound`]: every way Stripe delivers, into the same handlers: a webhook's body (snapshot
//!   or thin), a thin event on EventBridge (its object read back from Stripe), the ping, and
//!   `event_generation_failure.resolved` (`health.rs`: the named object re-checked).
//! - [`orders`]: the `inventory` Lambda's use case: orders from Checkout Sessions (`sources.rs`:
//!   where an order's lines come from; `takes.rs`: the hot path's take).
//! - [`reservations`]: the checkout API's reservations (holds: `caps.rs`; `settle.rs`: a hold's
//!   PaymentIntent events and the sweeper; the request's decoding is `decode::checkout_request`).
//! - [`held`]: held units compared with the pending orders, and repaired.
//! - [`shards`]: sharded stock for a very hot product (spread, collect, the take from a shard).
//! - [`stock_admin`]: operator stock changes and catalog imports.
//! - [`keys`]: hashed keys of client and e-mail addresses (caps, waitlist).
//! - [`message`]: the stock topic and message contract storefronts rely on.
//! - [`metrics`]: CloudWatch embedded-metric-format lines.
//! - [`storefront`]: the catalog document a static storefront loads.
//! - [`reconcile`]: the reconciler's run (`run.rs`) and its checks and repairs: `links.rs`
//!   (links active iff in stock), refunds (`reconcile.rs`), `sessions.rs`, `awaiting.rs`, and
//!   `recovery` (replaying missed Stripe events from `/v1/events`).
//! - [`parking`]: replayed events and repairs that failed, set aside with their reason.
//! - [`backfill`]: importing an existing Stripe account into the catalog.
//! - [`catalog_sync`]: catalog -> Stripe sync (products, prices, payment links) and drift repair.
//! - [`effects`]: running a decision's side effects.
//! - [`broadcast`]: the `broadcaster` Lambda: levels published from the table's stream.
//! - [`waitlist`]: the back-in-stock waitlist (joins, signed links in `token.rs`, restock
//!   announcements).
//! - `memory` (feature `memory`): in-memory ports for tests and benchmarks.

pub mod alerts;
pub mod backfill;
pub mod broadcast;
pub mod catalog_sync;
pub mod decode;
pub mod effects;
pub mod held;
pub mod inbound;
pub mod keys;
pub mod message;
pub mod metrics;
pub mod orders;
pub mod parking;
pub mod ports;
pub mod reconcile;
pub mod reservations;
pub mod shards;
pub mod stock_admin;
pub mod storefront;
pub mod waitlist;

#[cfg(feature = "memory")]
pub mod memory;

mod retry;

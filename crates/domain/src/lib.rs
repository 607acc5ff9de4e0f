//! The pure core of stockbridge: validated types and the inventory rules.
//!
//! Nothing here performs I/O, reads a clock or the environment: every rule is a function of
//! (current state, incoming fact, `now`) that returns a decision — the write set to commit and the
//! side effects to carry out afterwards. The application layer loads the state, calls a rule,
//! commits the write set in one conditional transaction and runs the effects.
//!
//! # Layout
//! - [`ids`]: newtypes for every identifier, parsed once at the edge.
//! - [`quantity`]: [`Quantity`] (never zero) and stock arithmetic.
//! - [`order`]: orders, their lines and their life cycle.
//! - [`item`]: a catalog item's stock state and the stock message published for it.
//! - [`decide`]: the rules — apply an order, confirm or release a held order, change stock.
//! - [`catalog`]: merchandising details (the source of truth for Stripe's products, prices and
//!   links) and what must change at Stripe to match them.
//! - [`hold`]: checkout-API holds: reserve, authorise (capture or cancel), expire.
//! - [`take`]: the hot path's sale decided in the write (a conditional take, then its record).
//! - [`invariants`]: the reconciler's checks (links active iff in stock).
//! - [`after_sale`]: the merchant's refunds and lost disputes, recorded and (by the store's
//!   policy) returned to stock.
//! - [`link_guard`]: the Stripe-side limit on a Payment Link, kept in step with stock.

pub mod after_sale;
pub mod catalog;
pub mod decide;
pub mod hold;
pub mod ids;
pub mod invariants;
pub mod item;
pub mod link;
pub mod link_guard;
pub mod low_stock;
pub mod order;
pub mod quantity;
pub mod shard;
pub mod take;
pub mod waitlist;

pub use catalog::*;
pub use decide::*;
pub use hold::*;
pub use ids::*;
pub use item::*;
pub use link::*;
pub use order::*;
pub use quantity::*;

/// A point in time, as milliseconds since the Unix epoch. The domain never reads a clock: callers
/// pass `now` in.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Timestamp(pub i64);

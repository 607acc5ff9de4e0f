//! Sharded stock for one very hot product (issue 13 §4): the rules, not yet wired to a store.
//!
//! One product's stock item takes every order's write, and DynamoDB serves one partition key at
//! about 1,000 write units a second, so a product sells at most ~250-330 orders a second
//! (docs/sharded-stock.md). A product marked hot splits its units over K shard items with
//! partition keys of their own; an order takes from one shard. The protocol, whose every
//! decision is a function here and whose interleavings are tested in `shard/tests.rs`:
//!
//! 1. **Which shard.** An order tries the shards in the order [`tries`] gives: first the one its
//!    id hashes to (every delivery of one order starts at the same shard), then the next ones,
//!    round. A take is the take of [`crate::take`] on a shard: `available >= q`, no mark of this
//!    order; it may leave the shard at 0 (other shards can still sell).
//! 2. **All shards refused.** The units may be spread so that no shard alone has `q`. The order
//!    reads every shard at once (a snapshot: DynamoDB's `TransactGetItems`, because units move
//!    between shards and two separate reads could miss a moving unit) and [`when_short`]
//!    decides: a mark of this order on any shard means another delivery took (read the order
//!    again); enough units in all → move units into the first shard ([`Move`], conditional on
//!    both shards' versions) and take again; fewer than `q` in all → the order is short. Only a
//!    snapshot can make an order short, so a refund never happens while the units existed.
//! 3. **Sold out** is every shard at 0 ([`sold_out`]), seen in a snapshot taken after the take
//!    that emptied a shard: of several takes emptying the last shards at once, the last one's
//!    snapshot sees every other's write.
//! 4. **The level** storefronts see is the shards' sum, versioned by the sum of their versions
//!    ([`level`]): every change adds one to exactly one shard's version (a move, to two), so the
//!    published version strictly increases.
//!
//! Exactly once as for one item: the order is read before it is decided; a delivery that finds
//! no record looks for its mark on every shard (a take elsewhere, after falling over); a take
//! whose record is refused is given back.

use crate::OrderId;

/// One shard of a product's stock, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Its index, `0..K`.
    pub index: u16,
    /// Units it can still sell.
    pub available: u64,
    /// Increases by one on every change of this shard.
    pub version: u64,
}

/// The most shards a product can have: splitting it moves the stock item's units into every
/// shard in one transaction, with a ledger entry each (DynamoDB allows 100 actions).
pub const MAX_SHARDS: u16 = 24;

/// FNV-1a, 64 bits: stable across releases and platforms (a redelivery must start where the
/// first delivery started). Never change it while shards exist.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The shards an order tries, in order: the one its id hashes to, then the next ones, round.
/// Empty when `shards` is 0.
pub fn tries(order: &OrderId, shards: u16) -> Vec<u16> {
    if shards == 0 {
        return Vec::new();
    }
    let first = (fnv1a(order.as_str().as_bytes()) % u64::from(shards)) as u16;
    (0..shards).map(|i| (first + i) % shards).collect()
}

/// `total` units over `shards` shards as evenly as possible (the first ones get the remainder).
pub fn split(total: u64, shards: u16) -> Vec<u64> {
    let k = u64::from(shards.max(1));
    (0..k)
        .map(|i| total / k + u64::from(i < total % k))
        .collect()
}

/// Units to move from one shard to another, conditional on both versions as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    /// The shard giving units, and its version as read.
    pub from: (u16, u64),
    /// The shard receiving them, and its version as read.
    pub to: (u16, u64),
    /// How many.
    pub units: u64,
}

/// What an order does when every shard refused its take, from a snapshot of all shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Short {
    /// A shard carries this order's mark: another delivery took. Read the order again.
    TakenElsewhere,
    /// The order's first shard has enough now (units moved in since the takes were refused):
    /// take again.
    TakeAgain,
    /// Enough units in all: move these into the order's first shard, then take again.
    Refill(Move),
    /// Fewer than `q` units in all shards: the order is short (oversold).
    Oversold,
}

/// The decision of step 2, from a snapshot of every shard (`marked`: the shards carrying this
/// order's mark). The move takes from the fullest other shard at least what is missing and, if
/// it has more, half of it, so a dry shard is not refilled one unit at a time in a rush.
pub fn when_short(snapshot: &[Shard], marked: &[u16], into: u16, quantity: u64) -> Short {
    if !marked.is_empty() {
        return Short::TakenElsewhere;
    }
    let total: u64 = snapshot.iter().map(|s| s.available).sum();
    let Some(target) = snapshot.iter().find(|s| s.index == into) else {
        return Short::Oversold;
    };
    if total < quantity {
        return Short::Oversold;
    }
    if target.available >= quantity {
        return Short::TakeAgain;
    }
    let missing = quantity - target.available;
    let donor = snapshot
        .iter()
        .filter(|s| s.index != into && s.available > 0)
        .max_by_key(|s| (s.available, std::cmp::Reverse(s.index)));
    match donor {
        // Enough in all and none elsewhere: the first shard has it (moved in since).
        None => Short::TakeAgain,
        Some(d) => Short::Refill(Move {
            from: (d.index, d.version),
            to: (target.index, target.version),
            units: missing.max(d.available / 2).clamp(1, d.available),
        }),
    }
}

/// Every shard at 0.
pub fn sold_out(snapshot: &[Shard]) -> bool {
    snapshot.iter().all(|s| s.available == 0)
}

/// The level storefronts see: units available in all shards, and a version that strictly
/// increases with every change of any shard.
pub fn level(snapshot: &[Shard]) -> (u64, u64) {
    snapshot
        .iter()
        .fold((0, 0), |(a, v), s| (a + s.available, v + s.version))
}

#[cfg(test)]
mod tests;

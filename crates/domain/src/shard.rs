//! Sharded stock for one very hot product (issue 13 §4).
//!
//! One product's stock item takes every order's write, and DynamoDB serves one partition key at
//! about 1,000 write units a second, so a product sells at most ~250-330 orders a second
//! (docs/sharded-stock.md). A product marked hot (`stockbridge stock shard`) is **spread**: its
//! units move from the stock item into K shard items with partition keys of their own, and the
//! simple orders of a rush take from them. Everything else stays with the stock item. The
//! protocol, whose decisions are functions here and whose interleavings are tested in
//! `shard/tests.rs`:
//!
//! 1. **Spread.** One transaction moves the item's available units into K shards ([`split`]),
//!    records `shards = K` and a new spread `epoch` on the item and copies the epoch to every
//!    shard. Only an item with no links recorded as switched off is spread.
//! 2. **A take** is the take of [`crate::take`] on the order's home shard ([`home`]: every
//!    delivery of one order has the same), conditioned on the epoch the delivery read from the
//!    item: `available >= q + 1` (a take never empties a shard), no mark of this order. Marks
//!    are only ever left on the home shard, so a refused take finds the order's own mark there.
//! 3. **A dry home shard** is refilled from the fullest other shard ([`refill`], one transaction
//!    conditioned on both shards' versions and on the epoch the delivery read); a donor keeps
//!    at least one unit.
//! 4. **Collect.** When no shard can refill it (few units left, or spread too thin), and before
//!    anything other than a take writes the item (a hold, several products, a delayed payment,
//!    an operator's change, a sell-out, an oversold order), the product is collected. First
//!    every shard is frozen (its epoch set to 0: no take or move lands on it any more, so the
//!    collect does not race a rush), then one transaction moves every shard's units **and the
//!    marks of takes not recorded yet** back to the item and records it as not spread (a
//!    recorded take's mark is dropped: its ledger entry names its order). A delivery that finds
//!    a frozen shard under the epoch it read finishes the collect. The item path then decides as for any product, seeing every unit and every
//!    unrecorded take. So a sell-out, a refund and a link switch never happen while units wait
//!    in a shard, and the last units of a rush are sold through the item.
//! 5. **The level** storefronts see is the item's units plus the shards', versioned by the sum
//!    of their versions ([`level`]); collecting sets the item's version above that sum
//!    ([`collected_version`]), so the published version strictly increases across spreads.
//!
//! Exactly once as for one item: a delivery reads its order and the item first (a mark on the
//! item is a take collected from a shard: record it); a take refused on the home shard because
//! the order's mark is there records that take; a take whose record is refused is given back
//! (to the item). A delivery that read the item before a collect and a new spread cannot take
//! again on the new spread: its epoch is old.

use crate::{
    CatalogItem, Cause, CauseKind, LedgerEntry, OrderId, ProductId, Spread, StoreId, Timestamp,
};

/// One shard of a product's stock, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Its index, `0..K`.
    pub index: u16,
    /// Units it can still sell.
    pub available: u64,
    /// Increases by one on every change of this shard.
    pub version: u64,
    /// The spread it belongs to; 0 while a collect has frozen it (no take, no move).
    pub epoch: u64,
}

/// The most shards a product can have: spreading it writes the item and every shard, with a
/// ledger entry each, in one transaction (DynamoDB allows 100 actions).
pub const MAX_SHARDS: u16 = 24;

/// FNV-1a, 64 bits: stable across releases and platforms (a redelivery must find the shard the
/// first delivery took from). Never change it while shards exist.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The shard an order takes from, of `shards` (at least 1).
pub fn home(order: &OrderId, shards: u16) -> u16 {
    (fnv1a(order.as_str().as_bytes()) % u64::from(shards.max(1))) as u16
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

/// What an order whose take its home shard refused for stock does next, from a read of every
/// shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refill {
    /// The home shard has enough now (units moved in since): take again.
    TakeAgain,
    /// Move these units into the home shard, then take again.
    Move(Move),
    /// No shard can spare enough: collect the product and decide on the item.
    Collect,
}

/// Step 3: a take of `quantity` needs `quantity + 1` units on the home shard `into`. The move
/// takes from the fullest other shard at least what is missing and, if it has more, half of
/// what it can spare, so a dry shard is not refilled one unit at a time in a rush.
pub fn refill(snapshot: &[Shard], into: u16, quantity: u64) -> Refill {
    let need = quantity.saturating_add(1);
    let Some(target) = snapshot.iter().find(|s| s.index == into) else {
        return Refill::Collect;
    };
    if target.available >= need {
        return Refill::TakeAgain;
    }
    let missing = need - target.available;
    let donor = snapshot
        .iter()
        .filter(|s| s.index != into && s.available > missing)
        .max_by_key(|s| (s.available, std::cmp::Reverse(s.index)));
    match donor {
        Some(d) => {
            let spare = d.available - 1;
            Refill::Move(Move {
                from: (d.index, d.version),
                to: (target.index, target.version),
                units: missing.max(spare / 2).min(spare),
            })
        }
        None => Refill::Collect,
    }
}

/// The level storefronts see of a spread product: the item's units and every shard's, and a
/// version that strictly increases with every change of any of them.
pub fn level(item_available: u64, item_version: u64, shards: &[Shard]) -> (u64, u64) {
    shards
        .iter()
        .fold((item_available, item_version), |(a, v), s| {
            (a.saturating_add(s.available), v.saturating_add(s.version))
        })
}

/// The item's version after collecting `shards` (as read; each one the collect changes is one
/// version further): above every level published while the product was spread.
pub fn collected_version(item_version: u64, shards: &[Shard]) -> u64 {
    level(0, item_version, shards)
        .1
        .saturating_add(shards.len() as u64)
        .saturating_add(1)
}

/// One conditional write of a regroup: the item (`shard: None`) or one shard, from the version
/// read to the next, with its new units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeWrite {
    /// The shard; `None`: the item.
    pub shard: Option<u16>,
    /// The version read: the write is refused if it moved.
    pub expected_version: u64,
    /// Units available after.
    pub available: u64,
    /// The version after.
    pub version: u64,
}

/// A spread, a collect or a move: units change place, none are sold or added. One transaction,
/// each write conditional on the version read, with a ledger entry for each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regroup {
    /// The store.
    pub store_id: StoreId,
    /// The product.
    pub product_id: ProductId,
    /// The writes (the item's first, when it is written).
    pub writes: Vec<NodeWrite>,
    /// What the item records afterwards: spread (`Some`, with the epoch the shards get) or not
    /// (`None`). Unchanged by a move.
    pub spread: Option<Spread>,
    /// One entry per write.
    pub ledger: Vec<LedgerEntry>,
}

impl Regroup {
    fn new(item: &CatalogItem, spread: Option<Spread>) -> Self {
        Self {
            store_id: item.store_id.clone(),
            product_id: item.product_id.clone(),
            writes: Vec::new(),
            spread,
            ledger: Vec::new(),
        }
    }

    fn push(&mut self, write: NodeWrite, before: u64, held: u64, at: Timestamp) {
        let delta = i64::try_from(write.available).unwrap_or(i64::MAX)
            - i64::try_from(before).unwrap_or(i64::MAX);
        self.ledger.push(LedgerEntry {
            store_id: self.store_id.clone(),
            product_id: self.product_id.clone(),
            version: write.version,
            delta,
            level: write.available,
            held,
            operation: None,
            cause: Cause {
                kind: CauseKind::Move,
                stripe_event_id: None,
                order_id: None,
                actor: Some("stockbridge: sharded stock".to_owned()),
            },
            at,
            shard: write.shard,
        });
        self.writes.push(write);
    }
}

/// Step 1: the item's available units into `k` shards, with a new epoch. A shard holds nothing
/// while the product is not spread; should one hold units anyway, they are kept (added to).
pub fn spread(item: &CatalogItem, shards: &[Shard], k: u16, epoch: u64, at: Timestamp) -> Regroup {
    let mut plan = Regroup::new(
        item,
        Some(Spread {
            shards: k,
            epoch,
            ..Spread::default()
        }),
    );
    let item_write = NodeWrite {
        shard: None,
        expected_version: item.version,
        available: 0,
        version: item.version + 1,
    };
    plan.push(item_write, item.available, item.held, at);
    for (index, units) in (0..k).zip(split(item.available, k)) {
        let (version, held) = shards
            .iter()
            .find(|s| s.index == index)
            .map_or((0, 0), |s| (s.version, s.available));
        let write = NodeWrite {
            shard: Some(index),
            expected_version: version,
            available: held + units,
            version: version + 1,
        };
        plan.push(write, held, 0, at);
    }
    plan
}

/// Step 4: every shard's units back to the item, which records it is no longer spread. Shards
/// already at 0 are left as they are.
pub fn collect(item: &CatalogItem, shards: &[Shard], at: Timestamp) -> Regroup {
    let mut plan = Regroup::new(item, None);
    let total: u64 = shards.iter().map(|s| s.available).sum();
    let item_write = NodeWrite {
        shard: None,
        expected_version: item.version,
        available: item.available.saturating_add(total),
        version: collected_version(item.version, shards),
    };
    plan.push(item_write, item.available, item.held, at);
    for s in shards.iter().filter(|s| s.available > 0) {
        let write = NodeWrite {
            shard: Some(s.index),
            expected_version: s.version,
            available: 0,
            version: s.version + 1,
        };
        plan.push(write, s.available, 0, at);
    }
    plan
}

/// Step 3: `m` as a regroup of its two shards (`snapshot` as read).
pub fn moved(item: &CatalogItem, snapshot: &[Shard], m: Move, at: Timestamp) -> Option<Regroup> {
    let find = |i: u16| snapshot.iter().find(|s| s.index == i);
    let (from, to) = (find(m.from.0)?, find(m.to.0)?);
    let mut plan = Regroup::new(item, item.spread);
    let give = NodeWrite {
        shard: Some(from.index),
        expected_version: from.version,
        available: from.available.checked_sub(m.units)?,
        version: from.version + 1,
    };
    plan.push(give, from.available, 0, at);
    let receive = NodeWrite {
        shard: Some(to.index),
        expected_version: to.version,
        available: to.available.saturating_add(m.units),
        version: to.version + 1,
    };
    plan.push(receive, to.available, 0, at);
    Some(plan)
}

#[cfg(test)]
mod tests;

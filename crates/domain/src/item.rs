//! Catalog items and the stock messages published for them.

use crate::{PaymentLinkId, ProductId, StoreId, Timestamp};

/// A product's stock in one store, as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CatalogItem {
    /// The store.
    pub store_id: StoreId,
    /// The product (its Stripe product id).
    pub product_id: ProductId,
    /// Display name.
    pub name: String,
    /// Units that can still be sold: on hand less what pending holds and pending delayed
    /// payments hold. Never negative: every write is conditional. Payment Links go off when it
    /// reaches 0.
    pub available: u64,
    /// Units held by pending checkout holds and delayed payments: sold if they are paid, back
    /// in `available` if not. On hand is `available + held`. Items stored before this field
    /// existed read as 0 (their pending holds return to `available` only).
    #[serde(default)]
    pub held: u64,
    /// Increases by one on every stock change, so readers can order messages and writers can
    /// compare-and-set.
    pub version: u64,
    /// Payment Links that sell this product.
    pub payment_links: Vec<PaymentLinkId>,
    /// Payment Links that stockbridge switched off because the product sold out; switched back
    /// on at restock. Links switched off by anyone else are not touched.
    pub deactivated_links: Vec<PaymentLinkId>,
    /// When the stock last changed.
    pub updated_at: Timestamp,
    /// When stockbridge began managing this level: the item's import or backfill, or the last
    /// `stock set --recount`. The count the merchant gave then already includes every sale paid
    /// before it, so an order paid earlier never moves this stock and is never refunded by
    /// stockbridge (see [`crate::decide_checkout`]). Items stored before this field existed read
    /// as 0: no boundary until their next `stock set --recount`.
    #[serde(default)]
    pub managed_since: Timestamp,
    /// The loading order's own take, made by a conditional update of this item and not yet
    /// recorded as an order ([`crate::take`]): set only when the item was loaded for that order
    /// ([`crate::take::TakeMark`]). The order was applied; recording it must not take again.
    #[serde(skip)]
    pub unrecorded_take: Option<crate::take::TakeMark>,
    /// Spread over shard items ([`crate::shard`]): its units are in the shards and the item's
    /// `available` holds only what came back to it since. `None`: not spread.
    #[serde(skip)]
    pub spread: Option<Spread>,
    /// Its low-stock threshold and state ([`crate::low_stock`]); `None`: no alerts.
    #[serde(skip)]
    pub low_stock: Option<crate::low_stock::LowStock>,
}

/// A spread product's shards, as recorded on its item (and, when the reader read them, what
/// they hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spread {
    /// How many shard items.
    pub shards: u16,
    /// Changes with every spread; a take is conditional on the epoch its delivery read.
    pub epoch: u64,
    /// Units available in all shards, as read (0 when the shards were not read).
    pub available: u64,
    /// The sum of the shards' versions, as read (0 when the shards were not read).
    pub versions: u64,
}

impl CatalogItem {
    /// Units in the merchant's hands: available plus held.
    pub fn on_hand(&self) -> u64 {
        self.available.saturating_add(self.held)
    }

    /// The stock message for the item's current state: for a spread product whose shards were
    /// read, the item's units and the shards' (`crate::shard::level`).
    pub fn level(&self) -> StockLevel {
        let spread = self.spread.unwrap_or_default();
        StockLevel {
            product_id: self.product_id.clone(),
            store_id: self.store_id.clone(),
            available: self.available.saturating_add(spread.available),
            held: self.held,
            version: self.version.saturating_add(spread.versions),
            updated_at: self.updated_at,
        }
    }
}

/// The live stock of one product in one store: what storefronts receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLevel {
    /// The product.
    pub product_id: ProductId,
    /// The store.
    pub store_id: StoreId,
    /// Units available.
    pub available: u64,
    /// Units held by pending checkouts (not available, not sold yet).
    pub held: u64,
    /// Strictly increasing per item: a client drops any message older than the one it shows.
    pub version: u64,
    /// When the level was committed.
    pub updated_at: Timestamp,
}

impl StockLevel {
    /// True when nothing is left.
    pub fn sold_out(&self) -> bool {
        self.available == 0
    }
}

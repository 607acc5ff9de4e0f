//! The store of orders, stock and the ledger, and the operator's switches.

use super::*;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition of the transaction failed: the state changed since it was read (another
    /// order took stock, or the same order was applied concurrently). Re-read and decide again.
    #[error("the stored state changed since it was read (conditional write refused)")]
    Conflict,
    /// The store throttled us or is temporarily unavailable; retry later.
    #[error("the store is throttling or unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored record could not be read back.
    #[error("stored record {key} is corrupt: {reason}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The item does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Any other failure of the store (permissions, missing table, ...).
    #[error("store request failed: {0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Conflict | Self::Unavailable(_))
    }
}

/// The operator's switches (`stockbridge pause repairs|links|refunds`, `resume`), kept in the
/// table and honoured by every function within a few seconds: for a sale that goes wrong, stop
/// one kind of action everywhere without a deploy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Controls {
    /// The reconciler computes and records every repair and carries none out (no replay, no
    /// link switch, no refund, no session applied).
    #[serde(default)]
    pub repairs_paused: bool,
    /// No Payment Link is switched on or off for stock (the switches are recorded and made by
    /// the reconciler after `resume`).
    #[serde(default)]
    pub links_paused: bool,
    /// No refund is made (oversold orders stay due; the reconciler refunds them after
    /// `resume`).
    #[serde(default)]
    pub refunds_paused: bool,
}

/// One of the operator's switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// [`Controls::repairs_paused`].
    Repairs,
    /// [`Controls::links_paused`].
    Links,
    /// [`Controls::refunds_paused`].
    Refunds,
}

impl Control {
    /// Its stored name.
    pub fn attribute(self) -> &'static str {
        match self {
            Self::Repairs => "repairs_paused",
            Self::Links => "links_paused",
            Self::Refunds => "refunds_paused",
        }
    }
}

/// Writes the operator's switches.
pub trait ControlStore: Send + Sync {
    /// Sets one switch, leaving the others as they are (two operators pausing two things at
    /// once both win). Every function sees it within a few seconds.
    fn set_control(
        &self,
        control: Control,
        paused: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Per-store settings kept in the table (`stockbridge store returns`).
pub trait StoreSettings: Send + Sync {
    /// Whether a store's refunded or lost-dispute orders return their units (both off unless
    /// set).
    fn returns_policy(
        &self,
        store: &StoreId,
    ) -> impl Future<Output = Result<ReturnsPolicy, StoreError>> + Send;

    /// Sets a store's returns policy. Every refund or dispute recorded from then on follows it
    /// (refunds recorded before are not returned again).
    fn set_returns_policy(
        &self,
        store: &StoreId,
        policy: ReturnsPolicy,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Orders, stock and the ledger.
pub trait InventoryStore: ParkingLot + Counters + ShardStore + StoreSettings + Send + Sync {
    /// The operator's switches, as stored at most a few seconds ago.
    fn controls(&self) -> impl Future<Output = Result<Controls, StoreError>> + Send;

    /// Reads an order record (if any) and the catalog items of `products` in `store_id`, with
    /// strongly consistent reads. Products missing from the catalog are absent from the map.
    fn load(
        &self,
        order_id: &OrderId,
        store_id: &StoreId,
        products: &[ProductId],
    ) -> impl Future<Output = Result<(Option<OrderRecord>, Items), StoreError>> + Send;

    /// Reads one order record.
    fn load_order(
        &self,
        order_id: &OrderId,
    ) -> impl Future<Output = Result<Option<OrderRecord>, StoreError>> + Send;

    /// What an operator's operation id was recorded for by a committed write
    /// ([`stockbridge_domain::WriteSet::operation`]); `None`: not recorded.
    fn operation_recorded(
        &self,
        operation: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Commits a decision's write set in ONE transaction, all or nothing.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when any condition fails (an item's version moved, the order
    /// already exists or changed status).
    fn commit(&self, write: &WriteSet) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Carries out a take ([`stockbridge_domain::take`]): ONE conditional update of the item,
    /// relative to what it holds when it lands, leaving the order's mark on it. `Ok(None)`:
    /// refused by its condition (too little left, the boundary or switched-off links changed,
    /// or the order's mark is there already): nothing changed, decide again.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when a transaction holds the item (decide again).
    fn take_stock(
        &self,
        take: &StockTake,
    ) -> impl Future<Output = Result<Option<TakeMark>, StoreError>> + Send;

    /// Records a take: commits `write` (its order and ledger entry, no item write) as
    /// [`InventoryStore::commit`] does, then forgets the take's mark on its item, at once or
    /// with the item's next take (the mark must outlive the record, never the other way).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the order was recorded meanwhile.
    fn record_take(
        &self,
        take: &StockTake,
        write: &WriteSet,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The ledger entry at one version of an item (`shard: None`) or of one of its shards, if
    /// any.
    fn ledger_entry(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        shard: Option<u16>,
        version: u64,
    ) -> impl Future<Output = Result<Option<LedgerEntry>, StoreError>> + Send;

    /// Gives back a duplicate take: commits `write` (`stockbridge_domain::take::undo`) as
    /// [`InventoryStore::commit`] does (also on a spread item: the units go back to the item),
    /// only while the item (`on: None`) or the shard `on` still carries `mark` for `order_id`,
    /// and removes the mark with it.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the item changed, the mark is gone, or a ledger entry the
    /// write puts exists.
    fn undo_take(
        &self,
        order_id: &OrderId,
        mark: TakeMark,
        on: Option<u16>,
        write: &WriteSet,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the marks of recorded takes left on an item (by functions that stopped before
    /// their next take of it), each only once its order is recorded. Returns how many went.
    fn forget_recorded_takes(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Records that an order was refunded.
    fn record_refund(
        &self,
        order_id: &OrderId,
        refund_id: &RefundId,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads one catalog item.
    fn item(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
    ) -> impl Future<Output = Result<Option<CatalogItem>, StoreError>> + Send;

    /// Forgets `links` as switched off by stockbridge, once they are back on — only while the
    /// item is in stock; links recorded since are kept (a later run sees any link still recorded
    /// and tries again).
    fn clear_deactivated(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        links: &[PaymentLinkId],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Creates a catalog item and its first ledger entry.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the item exists.
    fn create_item(
        &self,
        item: &CatalogItem,
        entry: &LedgerEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The store whose item a Payment Link was attached to (by `catalog import`, `backfill` or
    /// the catalog sync), for sessions that do not say their store.
    fn link_store(
        &self,
        link: &PaymentLinkId,
    ) -> impl Future<Output = Result<Option<StoreId>, StoreError>> + Send;

    /// What stockbridge knows of a Payment Link it made (its one product and unit price), so
    /// an order from it is decided without listing its line items; `None` for any other link.
    fn link_terms(
        &self,
        link: &PaymentLinkId,
    ) -> impl Future<Output = Result<Option<stockbridge_domain::LinkTerms>, StoreError>> + Send;

    /// Records a link's terms (the catalog sync, for each link it made or keeps on the
    /// product's current price).
    fn remember_link_terms(
        &self,
        link: &PaymentLinkId,
        terms: &stockbridge_domain::LinkTerms,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Updates an item's name and payment links, not its stock, and remembers each link's
    /// store ([`Self::link_store`]).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the item does not exist.
    fn update_item_details(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        name: &str,
        payment_links: &[PaymentLinkId],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

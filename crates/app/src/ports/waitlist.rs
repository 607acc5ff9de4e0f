//! The back-in-stock waitlist's records: the entries (one per address and product), the
//! restocks waiting to be announced, and the last one announced per product
//! ([`stockbridge_domain::waitlist`] has the rule).

use stockbridge_domain::Restock;

use super::*;

/// One address on one product's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitlistEntry {
    /// The store.
    pub store_id: StoreId,
    /// The product.
    pub product_id: ProductId,
    /// The address as the buyer gave it (trimmed).
    pub email: String,
    /// Confirmed (double opt-in) at this item version, so it waits for the next restock;
    /// `None` until confirmed.
    pub confirmed: Option<u64>,
    /// When the address joined (or last asked to).
    pub joined: Timestamp,
}

impl WaitlistEntry {
    /// The hashed key of its address (the record's key; never the address itself).
    pub fn email_key(&self) -> String {
        crate::keys::email_key(&self.email)
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryPage {
    /// The entries, by address key.
    pub entries: Vec<WaitlistEntry>,
    /// Where the next page starts (an address key), if there is one.
    pub next: Option<String>,
}

/// The waitlist's records.
pub trait Waitlist: Send + Sync {
    /// Records `entry` unconfirmed, kept until `expires`, unless its address is confirmed on that
    /// list already: then nothing is written and its confirmed version is answered.
    fn add_entry(
        &self,
        entry: &WaitlistEntry,
        expires: Timestamp,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// Confirms an address's entry as of `versions`: the item's version (as read), and the last
    /// restock announced; kept until `expires`. Nothing is written when it is confirmed and
    /// still waits (its version is at least that restock's). [`StoreError::Conflict`] when the
    /// item moved past the version read meanwhile: read it again and retry, so the entry never
    /// records a version a restock has already passed.
    fn confirm_entry(
        &self,
        store: &StoreId,
        product: &ProductId,
        email_key: &str,
        versions: (u64, u64),
        expires: Timestamp,
    ) -> impl Future<Output = Result<Confirmed, StoreError>> + Send;

    /// Removes an address's entry; `false` when there was none.
    fn remove_entry(
        &self,
        store: &StoreId,
        product: &ProductId,
        email_key: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes every entry of an address, on every list; how many there were.
    fn erase_address(
        &self,
        email_key: &str,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Confirmed entries whose version is in `versions`, at most `limit`, from the address key
    /// `after` on (exclusive).
    fn confirmed_entries(
        &self,
        store: &StoreId,
        product: &ProductId,
        versions: std::ops::Range<u64>,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<EntryPage, StoreError>> + Send;

    /// The restock recorded at `version` and not yet announced.
    fn pending_restock(
        &self,
        store: &StoreId,
        product: &ProductId,
        version: u64,
    ) -> impl Future<Output = Result<Option<Restock>, StoreError>> + Send;

    /// Restocks not yet announced, oldest first per product, at most `limit`.
    fn pending_restocks(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Restock>, StoreError>> + Send;

    /// The last restock claimed for announcement for a product (`Announced::default()`: none).
    fn announced(
        &self,
        store: &StoreId,
        product: &ProductId,
    ) -> impl Future<Output = Result<Announced, StoreError>> + Send;

    /// Claims `restock` for announcement, serving the entries since `last` (the claim read):
    /// `false`, and nothing written, when another claim moved it meanwhile.
    fn claim_restock(
        &self,
        restock: &Restock,
        last: &Announced,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes an announced (or superseded) restock's pending record.
    fn remove_restock(
        &self,
        restock: &Restock,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What confirming an entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// Confirmed now: it waits for the next restock.
    Now,
    /// It was confirmed and still waits: left as it is.
    AlreadyWaiting,
    /// There is no entry (expired, removed or erased).
    NoEntry,
}

/// The restock last claimed for announcement: its version, and where the entries it serves
/// start (the one claimed before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Announced {
    /// Its version (0: none yet).
    pub version: u64,
    /// The version of the one before it.
    pub from: u64,
}

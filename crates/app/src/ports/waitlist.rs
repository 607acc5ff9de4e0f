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
        crate::reservations::caps::email_key(&self.email)
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

    /// Confirms an address's entry at `version`, kept until `expires`; `false` when there is no
    /// entry (it expired, or was removed or erased).
    fn confirm_entry(
        &self,
        store: &StoreId,
        product: &ProductId,
        email_key: &str,
        version: u64,
        expires: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

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

    /// The version of the last restock announced for a product (0: none yet).
    fn last_announced(
        &self,
        store: &StoreId,
        product: &ProductId,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Records `restock` as announced: the product's last announced version becomes its
    /// version (unless a later one is recorded) and its pending record is removed.
    fn record_announced(
        &self,
        restock: &Restock,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

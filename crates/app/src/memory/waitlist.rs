//! The in-memory waitlist: entries by (store, product, address key), announced versions, and
//! the pending restocks `commit` records (in the store's state, written with the stock).

use stockbridge_domain::Restock;

use super::*;
use crate::ports::{EntryPage, Waitlist, WaitlistEntry};

/// The waitlist's records.
#[derive(Debug, Default, Clone)]
pub struct MemoryWaitlist {
    /// Entries and until when they last, by (store, product, address key).
    pub entries: BTreeMap<(StoreId, ProductId, String), (WaitlistEntry, Timestamp)>,
    /// The last restock announced per product.
    pub announced: BTreeMap<(StoreId, ProductId), u64>,
}

fn key(store: &StoreId, product: &ProductId, email: &str) -> (StoreId, ProductId, String) {
    (store.clone(), product.clone(), email.to_owned())
}

impl Waitlist for MemoryStore {
    async fn add_entry(
        &self,
        entry: &WaitlistEntry,
        expires: Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        let mut w = lock(&self.waitlist);
        let k = key(&entry.store_id, &entry.product_id, &entry.email_key());
        if let Some(version) = w.entries.get(&k).and_then(|(e, _)| e.confirmed) {
            return Ok(Some(version));
        }
        w.entries.insert(k, (entry.clone(), expires));
        Ok(None)
    }

    async fn confirm_entry(
        &self,
        store: &StoreId,
        product: &ProductId,
        email_key: &str,
        version: u64,
        expires: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut w = lock(&self.waitlist);
        let Some((e, until)) = w.entries.get_mut(&key(store, product, email_key)) else {
            return Ok(false);
        };
        e.confirmed = Some(version);
        *until = expires;
        Ok(true)
    }

    async fn remove_entry(
        &self,
        store: &StoreId,
        product: &ProductId,
        email_key: &str,
    ) -> Result<bool, StoreError> {
        let mut w = lock(&self.waitlist);
        Ok(w.entries.remove(&key(store, product, email_key)).is_some())
    }

    async fn erase_address(&self, email_key: &str) -> Result<u32, StoreError> {
        let mut w = lock(&self.waitlist);
        let before = w.entries.len();
        w.entries.retain(|(_, _, k), _| k != email_key);
        Ok(u32::try_from(before - w.entries.len()).unwrap_or(u32::MAX))
    }

    async fn confirmed_entries(
        &self,
        store: &StoreId,
        product: &ProductId,
        versions: std::ops::Range<u64>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<EntryPage, StoreError> {
        let w = lock(&self.waitlist);
        let mut matching = w
            .entries
            .iter()
            .filter(|((s, p, k), _)| {
                s == store && p == product && after.is_none_or(|a| k.as_str() > a)
            })
            .filter(|(_, (e, _))| e.confirmed.is_some_and(|v| versions.contains(&v)));
        let entries: Vec<WaitlistEntry> = matching
            .by_ref()
            .take(limit)
            .map(|(_, (e, _))| e.clone())
            .collect();
        let next = if matching.next().is_some() {
            entries.last().map(WaitlistEntry::email_key)
        } else {
            None
        };
        Ok(EntryPage { entries, next })
    }

    async fn pending_restock(
        &self,
        store: &StoreId,
        product: &ProductId,
        version: u64,
    ) -> Result<Option<Restock>, StoreError> {
        let s = lock(&self.state);
        Ok(s.restocks
            .get(&(store.clone(), product.clone(), version))
            .cloned())
    }

    async fn last_announced(
        &self,
        store: &StoreId,
        product: &ProductId,
    ) -> Result<u64, StoreError> {
        let w = lock(&self.waitlist);
        Ok(w.announced
            .get(&(store.clone(), product.clone()))
            .copied()
            .unwrap_or(0))
    }

    async fn record_announced(&self, restock: &Restock) -> Result<(), StoreError> {
        let k = (restock.store_id.clone(), restock.product_id.clone());
        {
            let mut w = lock(&self.waitlist);
            let last = w.announced.entry(k.clone()).or_insert(0);
            *last = (*last).max(restock.version);
        }
        lock(&self.state)
            .restocks
            .remove(&(k.0, k.1, restock.version));
        Ok(())
    }
}

//! The in-memory waitlist: entries by (store, product, address key), announced versions, and
//! the pending restocks `commit` records (in the store's state, written with the stock).

use stockbridge_domain::Restock;

use super::*;
use crate::ports::{Announced, Confirmed, EntryPage, Waitlist, WaitlistEntry};

/// The waitlist's records.
#[derive(Debug, Default, Clone)]
pub struct MemoryWaitlist {
    /// Entries and until when they last, by (store, product, address key).
    pub entries: BTreeMap<(StoreId, ProductId, String), (WaitlistEntry, Timestamp)>,
    /// The last restock claimed for announcement per product.
    pub announced: BTreeMap<(StoreId, ProductId), Announced>,
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
        (version, waiting_since): (u64, u64),
        expires: Timestamp,
    ) -> Result<Confirmed, StoreError> {
        let item_version = lock(&self.state)
            .items
            .get(&(store.clone(), product.clone()))
            .map(|i| i.version);
        let mut w = lock(&self.waitlist);
        let Some((e, until)) = w.entries.get_mut(&key(store, product, email_key)) else {
            return Ok(Confirmed::NoEntry);
        };
        if e.confirmed.is_some_and(|v| v >= waiting_since) {
            return Ok(Confirmed::AlreadyWaiting);
        }
        if item_version != Some(version) {
            return Err(StoreError::Conflict);
        }
        e.confirmed = Some(version);
        *until = expires;
        Ok(Confirmed::Now)
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

    async fn pending_restocks(&self, limit: usize) -> Result<Vec<Restock>, StoreError> {
        let s = lock(&self.state);
        Ok(s.restocks.values().take(limit).cloned().collect())
    }

    async fn announced(
        &self,
        store: &StoreId,
        product: &ProductId,
    ) -> Result<Announced, StoreError> {
        let w = lock(&self.waitlist);
        Ok(w.announced
            .get(&(store.clone(), product.clone()))
            .copied()
            .unwrap_or_default())
    }

    async fn claim_restock(&self, restock: &Restock, last: &Announced) -> Result<bool, StoreError> {
        let mut w = lock(&self.waitlist);
        let k = (restock.store_id.clone(), restock.product_id.clone());
        if w.announced.get(&k).copied().unwrap_or_default() != *last {
            return Ok(false);
        }
        w.announced.insert(
            k,
            Announced {
                version: restock.version,
                from: last.version,
            },
        );
        Ok(true)
    }

    async fn remove_restock(&self, restock: &Restock) -> Result<(), StoreError> {
        let k = (
            restock.store_id.clone(),
            restock.product_id.clone(),
            restock.version,
        );
        lock(&self.state).restocks.remove(&k);
        Ok(())
    }
}

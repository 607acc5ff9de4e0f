//! The in-memory shard items of spread products, with the conditions DynamoDB's adapter writes.

use stockbridge_domain::shard::{Regroup, Shard};

use super::*;
use crate::ports::ShardStore;

/// One shard item as the in-memory store keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryShard {
    /// Units it can sell.
    pub available: u64,
    /// Its version.
    pub version: u64,
    /// The spread it belongs to.
    pub epoch: u64,
}

impl MemoryState {
    /// A stored item as a reader sees it: a spread item with what its shards hold.
    pub(super) fn with_shards(&self, item: &CatalogItem) -> CatalogItem {
        let mut item = item.clone();
        if let Some(spread) = &mut item.spread {
            let key = (item.store_id.clone(), item.product_id.clone());
            for s in self.shards.get(&key).into_iter().flatten() {
                spread.available += s.available;
                spread.versions += s.version;
            }
        }
        item
    }

    /// A take on a shard (`StockTake::shard`): the same rules as on the item, on the shard.
    pub(super) fn take_from_shard(
        &mut self,
        take: &StockTake,
        index: u16,
        epoch: u64,
    ) -> Option<TakeMark> {
        let key = (take.store_id.clone(), take.product_id.clone());
        let mark = (key.0.clone(), key.1.clone(), take.order_id.clone());
        if self
            .shard_takes
            .get(&mark)
            .is_some_and(|(i, _)| *i == index)
        {
            return None;
        }
        let s = self.shards.get_mut(&key)?.get_mut(usize::from(index))?;
        if s.epoch != epoch || s.available <= take.quantity {
            return None;
        }
        s.available -= take.quantity;
        s.version += 1;
        let made = TakeMark {
            version: s.version,
            available: s.available,
            held: 0,
            quantity: take.quantity,
            shard: Some(index),
        };
        self.shard_takes.insert(mark, (index, made));
        Some(made)
    }

    fn regroup(&mut self, plan: &Regroup) -> Result<(), StoreError> {
        let key = (plan.store_id.clone(), plan.product_id.clone());
        let item_version = self.items.get(&key).map(|i| i.version);
        let shards = self.shards.entry(key.clone()).or_default();
        for w in &plan.writes {
            let found = match w.shard {
                None => item_version,
                Some(i) => Some(shards.get(usize::from(i)).map_or(0, |s| s.version)),
            };
            if found != Some(w.expected_version) {
                return Err(StoreError::Conflict);
            }
        }
        let item_written = plan.writes.iter().any(|w| w.shard.is_none());
        // A move lands only on shards of the spread it was decided on (not frozen, not stale).
        let epoch = plan.spread.map(|s| s.epoch);
        if !item_written
            && plan.writes.iter().any(|w| {
                w.shard
                    .and_then(|i| shards.get(usize::from(i)))
                    .map(|s| s.epoch)
                    != epoch
            })
        {
            return Err(StoreError::Conflict);
        }
        for w in &plan.writes {
            match w.shard {
                None => {
                    let item = self.items.get_mut(&key).expect("checked");
                    item.available = w.available;
                    item.version = w.version;
                    item.spread = plan.spread;
                }
                Some(i) => {
                    let i = usize::from(i);
                    if shards.len() <= i {
                        shards.resize(i + 1, MemoryShard::default());
                    }
                    shards[i].available = w.available;
                    shards[i].version = w.version;
                    if let (true, Some(spread)) = (item_written, plan.spread) {
                        shards[i].epoch = spread.epoch;
                    }
                }
            }
        }
        if item_written && plan.spread.is_none() {
            // Collected: the marks of takes not recorded yet go to the item with the units.
            let moved: Vec<_> = self
                .shard_takes
                .keys()
                .filter(|(s, p, _)| (s, p) == (&key.0, &key.1))
                .cloned()
                .collect();
            for k in moved {
                let Some((_, mark)) = self.shard_takes.get(&k).copied() else {
                    continue;
                };
                let recorded = self.ledger.iter().any(|e| {
                    (&e.store_id, &e.product_id) == (&k.0, &k.1)
                        && e.shard == mark.shard
                        && e.version == mark.version
                        && e.cause.order_id.as_ref() == Some(&k.2)
                });
                // A recorded take's mark stays for the sweep, as on DynamoDB.
                if !recorded {
                    self.shard_takes.remove(&k);
                    self.takes.insert(k, mark);
                }
            }
        }
        self.ledger.extend(plan.ledger.iter().cloned());
        Ok(())
    }
}

impl ShardStore for MemoryStore {
    async fn read_shards(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        shards: u16,
    ) -> Result<Vec<Shard>, StoreError> {
        let s = lock(&self.state);
        let stored = s.shards.get(&(store_id.clone(), product_id.clone()));
        Ok((0..shards)
            .map(|index| {
                let m = stored
                    .and_then(|v| v.get(usize::from(index)))
                    .copied()
                    .unwrap_or_default();
                Shard {
                    index,
                    available: m.available,
                    version: m.version,
                    epoch: m.epoch,
                }
            })
            .collect())
    }

    async fn freeze_shards(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        shards: u16,
        epoch: u64,
    ) -> Result<(), StoreError> {
        let mut s = lock(&self.state);
        for shard in s
            .shards
            .get_mut(&(store_id.clone(), product_id.clone()))
            .into_iter()
            .flatten()
            .take(usize::from(shards))
            .filter(|s| s.epoch == epoch)
        {
            shard.epoch = 0;
        }
        Ok(())
    }

    async fn shard_mark(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        shard: u16,
        order_id: &OrderId,
    ) -> Result<Option<TakeMark>, StoreError> {
        let key = (store_id.clone(), product_id.clone(), order_id.clone());
        Ok(lock(&self.state)
            .shard_takes
            .get(&key)
            .filter(|(i, _)| *i == shard)
            .map(|(_, m)| *m))
    }

    async fn regroup(&self, plan: &Regroup) -> Result<(), StoreError> {
        let result = lock(&self.state).regroup(plan);
        if result.is_err() {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

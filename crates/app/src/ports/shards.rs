//! The shard items of spread products (`stockbridge_domain::shard`, issue 13 §4).

use stockbridge_domain::shard::{Regroup, Shard};

use super::*;

/// Reads and regroups the shards of spread products. Every [`InventoryStore`] is one: a take on
/// a shard is [`InventoryStore::take_stock`] with [`StockTake::shard`] set.
pub trait ShardStore: Send + Sync {
    /// Every one of `shards` shards of a product, strongly consistent (not one snapshot: every
    /// write decided on it is conditional on the versions read). A shard never written reads as
    /// empty, version 0.
    fn read_shards(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        shards: u16,
    ) -> impl Future<Output = Result<Vec<Shard>, StoreError>> + Send;

    /// Freezes every one of `shards` shards of a product spread under `epoch` for a collect:
    /// sets its epoch to 0, so that no take or move lands on it any more (each conditioned on
    /// the spread's epoch). A shard of another spread, or never written, is left alone.
    fn freeze_shards(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        shards: u16,
        epoch: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The order's mark on one shard, if any (strongly consistent).
    fn shard_mark(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        shard: u16,
        order_id: &OrderId,
    ) -> impl Future<Output = Result<Option<TakeMark>, StoreError>> + Send;

    /// Carries out a spread, a collect or a move in ONE transaction, every write conditional
    /// on the version it read, with its ledger entries. A spread records the shards and the
    /// epoch on the item and gives every shard the epoch; a move is also conditional on both
    /// shards still having the spread's epoch; a collect carries the marks of takes not
    /// recorded yet (no ledger entry at their version names their order) to the item with the
    /// units, drops the others, and records that the item is no longer spread.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when any version moved (read again and decide again).
    fn regroup(&self, plan: &Regroup) -> impl Future<Output = Result<(), StoreError>> + Send;
}

//! Takes (`stockbridge_domain::take`): the hot path's conditional update of an item, the mark
//! it leaves there, and the mark's removal once its order is recorded.
//!
//! A take is ONE `UpdateItem`, relative to what the item holds when it lands:
//!
//! ```text
//! SET available = available - :q, version = version + :one, updated_at = :t,
//!     t{h}v = version + :one, t{h}a = available - :q, t{h}h = if_not_exists(held, :zero),
//!     t{h}q = :q
//! [REMOVE the marks of takes this function has recorded since]
//! IF available >= :q + 1 AND attribute_not_exists(t{h}v) AND managed_since = :m
//!    AND (no links recorded as switched off)
//! ```
//!
//! Right-hand sides read the item before the update, so the mark holds exactly what the take
//! produced. Single writes to one item serialise without error on DynamoDB; only a transaction
//! in flight on the item refuses them (`TransactionConflictException`, decided again).
//!
//! A mark is four number attributes named after the first 64 bits of the SHA-256 of the order
//! id (`t{16 hex}v|a|h|q`, about 100 bytes a mark): short names keep the item, and so the write
//! units every write of it costs, small. A function forgets the marks of the takes it recorded
//! in its next take of the same item (no extra write in a rush); marks a function never came
//! back for are removed by `InventoryStore::forget_recorded_takes` (the reconciler's link check), each only
//! once the ledger entry at its version names its order, so a mark never goes before its record.

use sha2::{Digest, Sha256};
use stockbridge_domain::take::{StockTake, TakeMark};

use super::*;

/// Marks a function remembers to remove, per item, before it removes them with a write of their
/// own (a function taking from many items, or a CLI).
const QUEUED_PER_ITEM: usize = 16;

/// The attribute names of one order's mark.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct MarkNames {
    pub(crate) version: String,
    available: String,
    held: String,
    quantity: String,
    /// The shard a take on a shard took from (kept when a collect carries the mark to the item).
    shard: String,
}

impl MarkNames {
    pub(crate) fn of(order: &OrderId) -> Self {
        let digest = Sha256::digest(order.as_str().as_bytes());
        let h: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self::with_hash(&h)
    }

    fn with_hash(h: &str) -> Self {
        Self {
            version: format!("t{h}v"),
            available: format!("t{h}a"),
            held: format!("t{h}h"),
            quantity: format!("t{h}q"),
            shard: format!("t{h}s"),
        }
    }

    /// The mark's three names from its version attribute's name (`t{16 hex}v`).
    fn from_version_name(name: &str) -> Option<Self> {
        let h = name.strip_prefix('t')?.strip_suffix('v')?;
        (h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit())).then(|| Self::with_hash(h))
    }

    pub(crate) fn all(&self) -> [&str; 5] {
        [
            &self.version,
            &self.available,
            &self.held,
            &self.quantity,
            &self.shard,
        ]
    }

    /// Every mark on a stored item or shard.
    pub(crate) fn on(a: &Attrs) -> Vec<Self> {
        a.keys()
            .filter_map(|k| Self::from_version_name(k))
            .collect()
    }
}

/// The mark of `order` on a stored item, if any.
pub(crate) fn mark_on(a: &Attrs, order: &OrderId) -> Result<Option<TakeMark>, StoreError> {
    let names = MarkNames::of(order);
    if !a.contains_key(&names.version) {
        return Ok(None);
    }
    mark_named(a, &names).map(Some)
}

/// The mark under `names` on a stored item or shard (present).
pub(crate) fn mark_named(a: &Attrs, names: &MarkNames) -> Result<TakeMark, StoreError> {
    let pk = get_s(a, "pk", "?")?.to_owned();
    Ok(TakeMark {
        version: get_n(a, &names.version, &pk)?,
        available: get_n(a, &names.available, &pk)?,
        held: get_n(a, &names.held, &pk)?,
        quantity: get_n(a, &names.quantity, &pk)?,
        shard: opt_n(a, &names.shard, &pk)?,
    })
}

/// The key a take writes: its item's, or its shard's.
fn take_key(take: &StockTake) -> (String, &'static str) {
    match take.shard {
        Some((i, _)) => (shard_pk(&take.store_id, &take.product_id, i), "SHARD"),
        None => (item_pk(&take.store_id, &take.product_id), "ITEM"),
    }
}

impl DynamoStore {
    pub(crate) async fn take_item(&self, take: &StockTake) -> Result<Option<TakeMark>, StoreError> {
        let (pk, sk) = take_key(take);
        let forget = self.queued_marks(&pk);
        let names = MarkNames::of(&take.order_id);
        let mut expression = "SET available = available - :q, version = version + :one, \
             updated_at = :t, #v = version + :one, #a = available - :q, \
             #h = if_not_exists(held, :zero), #n = :q"
            .to_owned();
        let mut update = self.client.update_item();
        // On a shard: the spread's epoch as the delivery read it, and the shard in the mark.
        // Otherwise the item's boundary and switched-off links as the decision saw them.
        let condition = match take.shard {
            Some((index, epoch)) => {
                expression.push_str(", #s = :shard");
                update = update
                    .expression_attribute_names("#s", &names.shard)
                    .expression_attribute_values(":shard", n(index))
                    .expression_attribute_values(":epoch", n(epoch));
                "attribute_exists(pk) AND available >= :min AND attribute_not_exists(#v) \
                 AND epoch = :epoch"
                    .to_owned()
            }
            None => {
                // Items stored before the boundary existed read as 0 (`parse_item`): so does
                // a missing one.
                let boundary = if take.managed_since.0 == 0 {
                    "(attribute_not_exists(managed_since) OR managed_since = :m)"
                } else {
                    "managed_since = :m"
                };
                update = update.expression_attribute_values(":m", n(take.managed_since.0));
                format!(
                    "attribute_exists(pk) AND available >= :min AND attribute_not_exists(#v) \
                     AND {boundary} AND (attribute_not_exists(deactivated_links) \
                     OR size(deactivated_links) = :zero)"
                )
            }
        };
        if !forget.is_empty() {
            let mut removed = Vec::new();
            for (i, name) in forget.iter().flat_map(MarkNames::all).enumerate() {
                update = update.expression_attribute_names(format!("#f{i}"), name);
                removed.push(format!("#f{i}"));
            }
            expression.push_str(&format!(" REMOVE {}", removed.join(", ")));
        }
        let result = update
            .table_name(&self.table)
            .set_key(Some(key(pk.clone(), sk)))
            .update_expression(expression)
            .condition_expression(condition)
            .expression_attribute_names("#v", &names.version)
            .expression_attribute_names("#a", &names.available)
            .expression_attribute_names("#h", &names.held)
            .expression_attribute_names("#n", &names.quantity)
            .expression_attribute_values(":q", n(take.quantity))
            .expression_attribute_values(":min", n(take.quantity.saturating_add(1)))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":t", n(take.at.0))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        let new = match result {
            Ok(r) => r.attributes.unwrap_or_default(),
            Err(e) => {
                // Not removed: still to forget.
                self.queue_marks(&pk, forget);
                return match e.code() {
                    Some("ConditionalCheckFailedException") => Ok(None),
                    // A transaction holds the item: decided again, like a failed condition.
                    Some("TransactionConflictException") => Err(StoreError::Conflict),
                    _ => Err(sdk_error(e)),
                };
            }
        };
        mark_on(&new, &take.order_id)?
            .map(Some)
            .ok_or_else(|| corrupt(&pk, "a take's answer carries no mark"))
    }

    pub(crate) async fn record_taken(
        &self,
        take: &StockTake,
        write: &WriteSet,
    ) -> Result<(), StoreError> {
        debug_assert!(write.items.is_empty() && write.checks.is_empty());
        self.commit(write).await?;
        let (pk, sk) = take_key(take);
        let mut queued = vec![MarkNames::of(&take.order_id)];
        queued.extend(self.queued_marks(&pk));
        if queued.len() < QUEUED_PER_ITEM {
            self.queue_marks(&pk, queued);
            return Ok(());
        }
        // A function that does not come back to this item soon enough: remove them now. The
        // order is recorded whatever happens here: a mark left goes with the reconciler.
        if let Err(e) = self.remove_marks((&pk, sk), &queued, None).await {
            tracing::warn!(item = %pk, error = %e, "marks of recorded takes left for the reconciler");
        }
        Ok(())
    }

    pub(crate) async fn ledger_entry_at(
        &self,
        store: &StoreId,
        product: &ProductId,
        shard: Option<u16>,
        version: u64,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        let k = key(
            ledger_pk(store, product, shard),
            &format!("LEDGER#{version:020}"),
        );
        self.get_consistent(k)
            .await?
            .as_ref()
            .map(parse_ledger)
            .transpose()
    }

    /// One transaction: the give-back's item update, conditional on the version it read and
    /// its switched-off links, the take's mark removed where it is (the item, or the shard
    /// `on`, conditional on it), and every ledger entry (each only if absent: the take's own
    /// entry at its version is there only if the take was recorded).
    pub(crate) async fn undo_taken(
        &self,
        order: &OrderId,
        mark: TakeMark,
        on: Option<u16>,
        write: &WriteSet,
    ) -> Result<(), StoreError> {
        let [u] = write.items.as_slice() else {
            return Err(StoreError::Other("a give-back writes one item".into()));
        };
        let names = MarkNames::of(order);
        let removed: Vec<String> = (0..names.all().len()).map(|i| format!("#f{i}")).collect();
        let remove = format!(" REMOVE {}", removed.join(", "));
        let name_all = |mut b: aws_sdk_dynamodb::types::builders::UpdateBuilder| {
            for (i, name) in names.all().into_iter().enumerate() {
                b = b.expression_attribute_names(format!("#f{i}"), name);
            }
            b.expression_attribute_values(":mark", n(mark.version))
        };
        let mut actions = Vec::new();
        match on {
            None => {
                let update = name_all(self.item_update(u, &remove, " AND #f0 = :mark"));
                actions.push(
                    TransactWriteItem::builder()
                        .update(build(update.build())?)
                        .build(),
                );
            }
            Some(i) => {
                let item = self.item_update(u, "", "");
                actions.push(
                    TransactWriteItem::builder()
                        .update(build(item.build())?)
                        .build(),
                );
                let shard = name_all(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(key(shard_pk(&u.store_id, &u.product_id, i), "SHARD")))
                        .update_expression(remove.trim_start())
                        .condition_expression("#f0 = :mark"),
                );
                actions.push(
                    TransactWriteItem::builder()
                        .update(build(shard.build())?)
                        .build(),
                );
            }
        }
        for e in &write.ledger {
            actions.push(self.ledger_put(e)?);
        }
        self.transact(actions).await
    }

    /// Removes the marks of recorded takes left on one item and on its shards (by functions
    /// that stopped before their next take there): each only if the ledger entry at its
    /// version (on the shard it took from) is its order's, so a mark whose order is not
    /// recorded yet stays. Returns how many were removed.
    ///
    /// # Errors
    /// The store's.
    pub(crate) async fn forget_recorded_marks(
        &self,
        store: &StoreId,
        product: &ProductId,
    ) -> Result<usize, StoreError> {
        let pk = item_pk(store, product);
        let Some(item) = self.get_consistent(key(pk.clone(), "ITEM")).await? else {
            return Ok(0);
        };
        let mut places = vec![((pk.clone(), "ITEM"), item.clone())];
        // Every shard item the product has had (a collected product's too: recorded takes'
        // marks stay on its shards for this sweep).
        let shard_items = opt_n::<u16>(&item, "shard_items", &pk)?
            .or(parse_item(&item)?.spread.map(|s| s.shards))
            .unwrap_or(0);
        for (i, a) in (0..shard_items).zip(self.shard_attrs(store, product, shard_items).await?) {
            if let Some(a) = a {
                places.push(((shard_pk(store, product, i), "SHARD"), a));
            }
        }
        let mut marks = Vec::new();
        for (place, a) in &places {
            for names in MarkNames::on(a) {
                let mark = mark_named(a, &names)?;
                marks.push((place.clone(), names, mark));
            }
        }
        let pairs: Vec<(MarkNames, TakeMark)> =
            marks.iter().map(|(_, n, m)| (n.clone(), *m)).collect();
        let recorded = self.recorded_marks(store, product, &pairs).await?;
        let mut removed = 0;
        for ((pk, sk), names, mark) in marks {
            if !recorded.contains(&(names.clone(), mark)) {
                continue;
            }
            match self
                .remove_marks((&pk, sk), &[names], Some(mark.version))
                .await
            {
                Ok(()) => removed += 1,
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// Removes marks from an item or a shard (only if the first one still holds `version`,
    /// when given).
    async fn remove_marks(
        &self,
        (pk, sk): (&str, &str),
        marks: &[MarkNames],
        version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_owned(), sk)));
        let mut removed = Vec::new();
        for (i, name) in marks.iter().flat_map(MarkNames::all).enumerate() {
            update = update.expression_attribute_names(format!("#f{i}"), name);
            removed.push(format!("#f{i}"));
        }
        update = match version {
            Some(v) => update
                .condition_expression("attribute_exists(pk) AND #f0 = :v")
                .expression_attribute_values(":v", n(v)),
            None => update.condition_expression("attribute_exists(pk)"),
        };
        match update
            .update_expression(format!("REMOVE {}", removed.join(", ")))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    fn queued_marks(&self, pk: &str) -> Vec<MarkNames> {
        let mut q = self
            .recorded_takes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        q.remove(pk).unwrap_or_default()
    }

    fn queue_marks(&self, pk: &str, marks: Vec<MarkNames>) {
        if marks.is_empty() {
            return;
        }
        let mut q = self
            .recorded_takes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        q.entry(pk.to_owned()).or_default().extend(marks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marks_names_are_short_stable_and_found_again_from_the_version_name() {
        let order =
            OrderId::parse("cs_live_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ0123456789abcdefghij")
                .unwrap();
        let names = MarkNames::of(&order);
        assert_eq!(names, MarkNames::of(&order));
        assert_eq!(names.version.len(), 18);
        assert_eq!(
            MarkNames::from_version_name(&names.version),
            Some(names.clone())
        );
        assert_ne!(
            names,
            MarkNames::of(&OrderId::parse("cs_live_other").unwrap())
        );
        for other in [
            "available",
            "version",
            "tv",
            "t0123456789abcdefa",
            "t0123456789abcdeXv",
        ] {
            assert_eq!(MarkNames::from_version_name(other), None, "{other}");
        }
    }
}

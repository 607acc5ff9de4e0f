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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MarkNames {
    pub(crate) version: String,
    available: String,
    held: String,
    quantity: String,
}

impl MarkNames {
    pub(crate) fn of(order: &OrderId) -> Self {
        let digest = Sha256::digest(order.as_str().as_bytes());
        let h: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            version: format!("t{h}v"),
            available: format!("t{h}a"),
            held: format!("t{h}h"),
            quantity: format!("t{h}q"),
        }
    }

    /// The mark's three names from its version attribute's name (`t{16 hex}v`).
    fn from_version_name(name: &str) -> Option<Self> {
        let h = name.strip_prefix('t')?.strip_suffix('v')?;
        (h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit())).then(|| Self {
            version: name.to_owned(),
            available: format!("t{h}a"),
            held: format!("t{h}h"),
            quantity: format!("t{h}q"),
        })
    }

    fn all(&self) -> [&str; 4] {
        [&self.version, &self.available, &self.held, &self.quantity]
    }
}

/// The mark of `order` on a stored item, if any.
pub(crate) fn mark_on(a: &Attrs, order: &OrderId) -> Result<Option<TakeMark>, StoreError> {
    let names = MarkNames::of(order);
    if !a.contains_key(&names.version) {
        return Ok(None);
    }
    let pk = get_s(a, "pk", "?")?.to_owned();
    Ok(Some(TakeMark {
        version: get_n(a, &names.version, &pk)?,
        available: get_n(a, &names.available, &pk)?,
        held: get_n(a, &names.held, &pk)?,
        quantity: get_n(a, &names.quantity, &pk)?,
    }))
}

impl DynamoStore {
    pub(crate) async fn take_item(&self, take: &StockTake) -> Result<Option<TakeMark>, StoreError> {
        let pk = item_pk(&take.store_id, &take.product_id);
        let forget = self.queued_marks(&pk);
        let names = MarkNames::of(&take.order_id);
        let mut expression = "SET available = available - :q, version = version + :one, \
             updated_at = :t, #v = version + :one, #a = available - :q, \
             #h = if_not_exists(held, :zero), #n = :q"
            .to_owned();
        let mut update = self.client.update_item();
        if !forget.is_empty() {
            let mut removed = Vec::new();
            for (i, name) in forget.iter().flat_map(MarkNames::all).enumerate() {
                update = update.expression_attribute_names(format!("#f{i}"), name);
                removed.push(format!("#f{i}"));
            }
            expression.push_str(&format!(" REMOVE {}", removed.join(", ")));
        }
        // Items stored before the boundary existed read as 0 (`parse_item`): so does a missing one.
        let boundary = if take.managed_since.0 == 0 {
            "(attribute_not_exists(managed_since) OR managed_since = :m)"
        } else {
            "managed_since = :m"
        };
        let result = update
            .table_name(&self.table)
            .set_key(Some(key(pk.clone(), "ITEM")))
            .update_expression(expression)
            .condition_expression(format!(
                "attribute_exists(pk) AND available >= :min AND attribute_not_exists(#v) \
                 AND {boundary} AND (attribute_not_exists(deactivated_links) \
                 OR size(deactivated_links) = :zero)"
            ))
            .expression_attribute_names("#v", &names.version)
            .expression_attribute_names("#a", &names.available)
            .expression_attribute_names("#h", &names.held)
            .expression_attribute_names("#n", &names.quantity)
            .expression_attribute_values(":q", n(take.quantity))
            .expression_attribute_values(":min", n(take.quantity.saturating_add(1)))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":t", n(take.at.0))
            .expression_attribute_values(":m", n(take.managed_since.0))
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
        let pk = item_pk(&take.store_id, &take.product_id);
        let mut queued = vec![MarkNames::of(&take.order_id)];
        queued.extend(self.queued_marks(&pk));
        if queued.len() < QUEUED_PER_ITEM {
            self.queue_marks(&pk, queued);
            return Ok(());
        }
        // A function that does not come back to this item soon enough: remove them now. The
        // order is recorded whatever happens here: a mark left goes with the reconciler.
        if let Err(e) = self.remove_marks(&pk, &queued, None).await {
            tracing::warn!(item = %pk, error = %e, "marks of recorded takes left for the reconciler");
        }
        Ok(())
    }

    pub(crate) async fn ledger_entry_at(
        &self,
        store: &StoreId,
        product: &ProductId,
        version: u64,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        let k = key(item_pk(store, product), &format!("LEDGER#{version:020}"));
        self.get_consistent(k)
            .await?
            .as_ref()
            .map(parse_ledger)
            .transpose()
    }

    /// One transaction: the give-back's item update, conditional on the version it read, its
    /// switched-off links and the take's mark (removed), and every ledger entry (each only if
    /// absent: the take's own entry at its version is there only if the take was recorded).
    pub(crate) async fn undo_taken(
        &self,
        order: &OrderId,
        mark: TakeMark,
        write: &WriteSet,
    ) -> Result<(), StoreError> {
        let [u] = write.items.as_slice() else {
            return Err(StoreError::Other("a give-back writes one item".into()));
        };
        let names = MarkNames::of(order);
        let mut update = self
            .item_update(u, " REMOVE #f0, #f1, #f2, #f3", " AND #f0 = :mark")
            .expression_attribute_values(":mark", n(mark.version));
        for (i, name) in names.all().into_iter().enumerate() {
            update = update.expression_attribute_names(format!("#f{i}"), name);
        }
        let mut actions = vec![
            TransactWriteItem::builder()
                .update(build(update.build())?)
                .build(),
        ];
        for e in &write.ledger {
            actions.push(self.ledger_put(e)?);
        }
        self.transact(actions).await
    }

    /// Removes the marks of recorded takes left on one item (by functions that stopped before
    /// their next take of it): each only if the ledger entry at its version is its order's, so
    /// a mark whose order is not recorded yet stays. Returns how many were removed.
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
        let mut removed = 0;
        for names in item.keys().filter_map(|k| MarkNames::from_version_name(k)) {
            let version: u64 = get_n(&item, &names.version, &pk)?;
            let entry = self
                .get_consistent(key(pk.clone(), &format!("LEDGER#{version:020}")))
                .await?;
            let recorded = entry
                .as_ref()
                .and_then(|e| e.get("order_id"))
                .and_then(|v| v.as_s().ok())
                .and_then(|o| OrderId::parse(o.as_str()).ok())
                .is_some_and(|o| MarkNames::of(&o) == names);
            if recorded {
                match self.remove_marks(&pk, &[names], Some(version)).await {
                    Ok(()) => removed += 1,
                    Err(StoreError::Conflict) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(removed)
    }

    /// Removes marks from an item (only if the first one still holds `version`, when given).
    async fn remove_marks(
        &self,
        pk: &str,
        marks: &[MarkNames],
        version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_owned(), "ITEM")));
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
        update
            .update_expression(format!("REMOVE {}", removed.join(", ")))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
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

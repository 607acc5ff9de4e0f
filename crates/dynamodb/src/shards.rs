//! The shard items of spread products (`stockbridge_domain::shard`): `SHARD#{store}#{product}#{i}`
//! / `SHARD`, each with `available`, `version`, the spread's `epoch` and the marks of the takes
//! made there, and ledger entries under the shard's own partition.
//!
//! A spread, a collect and a move ([`stockbridge_domain::shard::Regroup`]) are one
//! `TransactWriteItems` each, every write conditional on the version the plan read. A collect
//! reads the shards again to carry their marks to the item (the same transaction removes them
//! from the shards, conditional on the versions read, so no mark is lost or doubled). The shards
//! are read with a strongly consistent `BatchGetItem` (see `shard_attrs` for why not a snapshot).

use stockbridge_app::ports::ShardStore;
use stockbridge_domain::shard::{NodeWrite, Regroup, Shard};
use stockbridge_domain::take::TakeMark;

use super::*;
use crate::takes::{MarkNames, mark_on};

/// The most marks of unrecorded takes a collect carries to the item in one update expression
/// (five attributes each, within DynamoDB's 4 KB expression limit).
const MAX_CARRIED_MARKS: usize = 30;

impl DynamoStore {
    /// Every shard of a product as stored (absent ones: `None`), strongly consistent. Not a
    /// snapshot: `TransactGetItems` would be refused whenever a take is in flight on any shard,
    /// which in a rush is always. Every write decided on it is conditional on the versions read;
    /// a level read during a move may count the moved units twice or not at all, never reaching
    /// 0 while units exist (a donor keeps one).
    pub(crate) async fn shard_attrs(
        &self,
        store: &StoreId,
        product: &ProductId,
        shards: u16,
    ) -> Result<Vec<Option<Attrs>>, StoreError> {
        let keys: Vec<Attrs> = (0..shards)
            .map(|i| key(shard_pk(store, product, i), "SHARD"))
            .collect();
        let mut found: HashMap<String, Attrs> = HashMap::new();
        for a in self.batch_get(keys).await? {
            found.insert(get_s(&a, "pk", "?")?.to_owned(), a);
        }
        Ok((0..shards)
            .map(|i| found.remove(&shard_pk(store, product, i)))
            .collect())
    }

    /// A spread item as readers see it: with what its shards hold (`Spread::available`,
    /// `Spread::versions`).
    pub(crate) async fn with_shards(
        &self,
        mut item: CatalogItem,
    ) -> Result<CatalogItem, StoreError> {
        let Some(spread) = &mut item.spread else {
            return Ok(item);
        };
        for s in self
            .read_shards(&item.store_id, &item.product_id, spread.shards)
            .await?
        {
            spread.available += s.available;
            spread.versions += s.version;
        }
        Ok(item)
    }

    /// The item's write of a regroup: its units and version, and what it records of the spread.
    fn item_write(
        &self,
        plan: &Regroup,
        w: &NodeWrite,
        (marks, shard_items): (&[(MarkNames, TakeMark)], u16),
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(item_pk(&plan.store_id, &plan.product_id), "ITEM")))
            .condition_expression("version = :seen")
            .expression_attribute_values(":seen", n(w.expected_version))
            .expression_attribute_values(":a", n(w.available))
            .expression_attribute_values(":v", n(w.version))
            .expression_attribute_values(":t", n(plan.ledger[0].at.0));
        let mut set = vec![
            "available = :a".to_owned(),
            "version = :v".into(),
            "updated_at = :t".into(),
        ];
        let mut tail = String::new();
        match plan.spread {
            Some(spread) => {
                set.push("shards = :k".into());
                set.push("epoch = :e".into());
                // How many shard items exist, kept when collected, for the sweep of marks.
                set.push("shard_items = :items".into());
                update = update
                    .expression_attribute_values(":k", n(spread.shards))
                    .expression_attribute_values(":e", n(spread.epoch))
                    .expression_attribute_values(":items", n(shard_items.max(spread.shards)));
            }
            None => tail.push_str(" REMOVE shards, epoch"),
        }
        // A collect carries the shards' marks: the takes they stand for are still to record.
        for (i, (names, mark)) in marks.iter().enumerate() {
            let values = [
                mark.version,
                mark.available,
                mark.held,
                mark.quantity,
                u64::from(mark.shard.unwrap_or_default()),
            ];
            for (j, (name, value)) in names.all().into_iter().zip(values).enumerate() {
                update = update
                    .expression_attribute_names(format!("#m{i}x{j}"), name)
                    .expression_attribute_values(format!(":m{i}x{j}"), n(value));
                set.push(format!("#m{i}x{j} = :m{i}x{j}"));
            }
        }
        let update = update.update_expression(format!("SET {}{tail}", set.join(", ")));
        Ok(TransactWriteItem::builder()
            .update(build(update.build())?)
            .build())
    }

    /// A shard's write of a regroup, removing `marks` (a collect).
    fn shard_write(
        &self,
        plan: &Regroup,
        w: &NodeWrite,
        index: u16,
        (epoch, moving): (Option<u64>, Option<u64>),
        marks: &[MarkNames],
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(
                shard_pk(&plan.store_id, &plan.product_id, index),
                "SHARD",
            )))
            .expression_attribute_values(":a", n(w.available))
            .expression_attribute_values(":v", n(w.version))
            .expression_attribute_values(":seen", n(w.expected_version))
            .expression_attribute_values(":kind", s("shard"))
            .expression_attribute_values(":store", s(plan.store_id.as_str()))
            .expression_attribute_values(":product", s(plan.product_id.as_str()))
            .expression_attribute_values(":t", n(plan.ledger[0].at.0));
        let mut set = "available = :a, version = :v, kind = :kind, store_id = :store, \
                       product_id = :product, updated_at = :t"
            .to_owned();
        if let Some(e) = epoch {
            set.push_str(", epoch = :e");
            update = update.expression_attribute_values(":e", n(e));
        }
        let mut removed = Vec::new();
        for (i, name) in marks.iter().flat_map(MarkNames::all).enumerate() {
            update = update.expression_attribute_names(format!("#r{i}"), name);
            removed.push(format!("#r{i}"));
        }
        let remove = if removed.is_empty() {
            String::new()
        } else {
            format!(" REMOVE {}", removed.join(", "))
        };
        // Never written: version 0. A move: only on shards of the spread it was decided on.
        let condition = match (w.expected_version, moving) {
            (0, _) => "attribute_not_exists(pk) OR version = :seen",
            (_, Some(e)) => {
                update = update.expression_attribute_values(":spread", n(e));
                "version = :seen AND epoch = :spread"
            }
            (_, None) => "version = :seen",
        };
        let update = update
            .update_expression(format!("SET {set}{remove}"))
            .condition_expression(condition);
        Ok(TransactWriteItem::builder()
            .update(build(update.build())?)
            .build())
    }
}

impl ShardStore for DynamoStore {
    async fn read_shards(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        shards: u16,
    ) -> Result<Vec<Shard>, StoreError> {
        let attrs = self.shard_attrs(store_id, product_id, shards).await?;
        (0..shards)
            .zip(attrs)
            .map(|(index, a)| {
                let Some(a) = a else {
                    return Ok(Shard {
                        index,
                        available: 0,
                        version: 0,
                        epoch: 0,
                    });
                };
                let pk = shard_pk(store_id, product_id, index);
                Ok(Shard {
                    index,
                    available: get_n(&a, "available", &pk)?,
                    version: get_n(&a, "version", &pk)?,
                    epoch: opt_n(&a, "epoch", &pk)?.unwrap_or(0),
                })
            })
            .collect()
    }

    async fn freeze_shards(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        shards: u16,
        epoch: u64,
    ) -> Result<(), StoreError> {
        for i in 0..shards {
            let r = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(shard_pk(store_id, product_id, i), "SHARD")))
                .update_expression("SET epoch = :frozen")
                // Only the spread this collect read: never a newer one.
                .condition_expression("epoch = :spread")
                .expression_attribute_values(":frozen", n(0))
                .expression_attribute_values(":spread", n(epoch))
                .send()
                .await;
            match r {
                Ok(_) => {}
                Err(e) if e.code() == Some("ConditionalCheckFailedException") => {}
                // A take in flight holds it (the model's rule, and DynamoDB's for transactions):
                // the next attempt freezes it.
                Err(e) if e.code() == Some("TransactionConflictException") => {
                    return Err(StoreError::Conflict);
                }
                Err(e) => return Err(sdk_error(e)),
            }
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
        let k = key(shard_pk(store_id, product_id, shard), "SHARD");
        match self.get_consistent(k).await? {
            Some(a) => mark_on(&a, order_id),
            None => Ok(None),
        }
    }

    async fn regroup(&self, plan: &Regroup) -> Result<(), StoreError> {
        let collecting = plan.spread.is_none() && plan.writes.iter().any(|w| w.shard.is_none());
        let spreading = plan.spread.is_some() && plan.writes.iter().any(|w| w.shard.is_none());
        let mut writes: Vec<NodeWrite> = plan.writes.clone();
        let mut carried: Vec<Unrecorded> = Vec::new();
        if collecting {
            // The marks of unrecorded takes go to the item with the units, a batch at a time
            // if there are many (frozen shards take no new ones); recorded ones stay on the
            // shards for the sweep (harmless: their orders are recorded).
            loop {
                carried = self.unrecorded_marks(plan).await?;
                if carried.len() <= MAX_CARRIED_MARKS {
                    break;
                }
                self.carry_marks(plan, &carried[..MAX_CARRIED_MARKS])
                    .await?;
            }
            for u in &carried {
                match writes.iter().find(|w| w.shard == Some(u.shard)) {
                    Some(w) if w.expected_version != u.shard_version => {
                        return Err(StoreError::Conflict);
                    }
                    Some(_) => {}
                    None => writes.push(NodeWrite {
                        shard: Some(u.shard),
                        expected_version: u.shard_version,
                        available: u.shard_available,
                        version: u.shard_version + 1,
                    }),
                }
            }
        }
        let epoch = plan.spread.filter(|_| spreading).map(|s| s.epoch);
        let moving = plan
            .spread
            .filter(|_| !spreading && !collecting)
            .map(|s| s.epoch);
        let marks: Vec<(MarkNames, TakeMark)> =
            carried.iter().map(|u| (u.names.clone(), u.mark)).collect();
        let shard_items = if spreading {
            let k = key(item_pk(&plan.store_id, &plan.product_id), "ITEM");
            let pk = item_pk(&plan.store_id, &plan.product_id);
            match self.get_consistent(k).await? {
                Some(a) => opt_n::<u16>(&a, "shard_items", &pk)?.unwrap_or(0),
                None => 0,
            }
        } else {
            0
        };
        let mut actions = Vec::with_capacity(writes.len() + plan.ledger.len());
        for w in &writes {
            actions.push(match w.shard {
                None => self.item_write(plan, w, (&marks, shard_items))?,
                Some(i) => {
                    let removed: Vec<MarkNames> = carried
                        .iter()
                        .filter(|u| u.shard == i)
                        .map(|u| u.names.clone())
                        .collect();
                    self.shard_write(plan, w, i, (epoch, moving), &removed)?
                }
            });
        }
        for e in &plan.ledger {
            actions.push(self.ledger_put(e)?);
        }
        self.transact(actions).await
    }
}

/// A mark of a take not recorded yet, on a shard, as a collect found it.
#[derive(Debug, Clone)]
struct Unrecorded {
    shard: u16,
    shard_version: u64,
    shard_available: u64,
    names: MarkNames,
    mark: TakeMark,
}

impl DynamoStore {
    /// The marks on a product's shards whose takes are not recorded (no ledger entry at their
    /// version names their order), the ledger read in batches.
    async fn unrecorded_marks(&self, plan: &Regroup) -> Result<Vec<Unrecorded>, StoreError> {
        let (store, product) = (&plan.store_id, &plan.product_id);
        let item = self
            .get_consistent(key(item_pk(store, product), "ITEM"))
            .await?
            .ok_or(StoreError::Conflict)?;
        let shards = parse_item(&item)?.spread.map_or(0, |s| s.shards);
        let mut found = Vec::new();
        for (index, a) in (0..shards).zip(self.shard_attrs(store, product, shards).await?) {
            let Some(a) = a else { continue };
            let pk = shard_pk(store, product, index);
            let (version, available) = (get_n(&a, "version", &pk)?, get_n(&a, "available", &pk)?);
            for names in MarkNames::on(&a) {
                let mut mark = crate::takes::mark_named(&a, &names)?;
                mark.shard = mark.shard.or(Some(index));
                found.push(Unrecorded {
                    shard: index,
                    shard_version: version,
                    shard_available: available,
                    names,
                    mark,
                });
            }
        }
        let marks: Vec<(MarkNames, TakeMark)> =
            found.iter().map(|u| (u.names.clone(), u.mark)).collect();
        let recorded = self.recorded_marks(store, product, &marks).await?;
        found.retain(|u| !recorded.contains(&(u.names.clone(), u.mark)));
        Ok(found)
    }

    /// Which of `marks` (of one product, on its item or shards) stand for a recorded take: the
    /// ledger entry at the mark's version, on the shard it took from, names its order. The
    /// ledger is read in batches. The collect and the sweep of recorded marks both ask this.
    pub(crate) async fn recorded_marks(
        &self,
        store: &StoreId,
        product: &ProductId,
        marks: &[(MarkNames, TakeMark)],
    ) -> Result<std::collections::HashSet<(MarkNames, TakeMark)>, StoreError> {
        let keys: Vec<Attrs> = marks
            .iter()
            .map(|(_, m)| {
                let pk = ledger_pk(store, product, m.shard);
                key(pk, &format!("LEDGER#{:020}", m.version))
            })
            .collect();
        let mut named = std::collections::HashSet::new();
        for e in self.batch_get(keys).await? {
            let e = parse_ledger(&e)?;
            if let Some(o) = e.cause.order_id {
                named.insert((e.shard, e.version, MarkNames::of(&o)));
            }
        }
        Ok(marks
            .iter()
            .filter(|(names, m)| named.contains(&(m.shard, m.version, names.clone())))
            .cloned()
            .collect())
    }

    /// Moves `batch` of unrecorded marks from their shards to the item, units untouched (each
    /// shard only at the version read: frozen, nothing else changes it).
    async fn carry_marks(&self, plan: &Regroup, batch: &[Unrecorded]) -> Result<(), StoreError> {
        let (store, product) = (&plan.store_id, &plan.product_id);
        let mut item = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(item_pk(store, product), "ITEM")))
            .condition_expression("attribute_exists(pk)");
        let mut set = Vec::new();
        for (i, u) in batch.iter().enumerate() {
            let m = u.mark;
            let values = [
                m.version,
                m.available,
                m.held,
                m.quantity,
                u64::from(m.shard.unwrap_or(u.shard)),
            ];
            for (j, (name, value)) in u.names.all().into_iter().zip(values).enumerate() {
                item = item
                    .expression_attribute_names(format!("#m{i}x{j}"), name)
                    .expression_attribute_values(format!(":m{i}x{j}"), n(value));
                set.push(format!("#m{i}x{j} = :m{i}x{j}"));
            }
        }
        let item = item.update_expression(format!("SET {}", set.join(", ")));
        let mut actions = vec![
            TransactWriteItem::builder()
                .update(build(item.build())?)
                .build(),
        ];
        let mut by_shard: std::collections::BTreeMap<u16, (u64, Vec<&MarkNames>)> =
            Default::default();
        for u in batch {
            by_shard
                .entry(u.shard)
                .or_insert((u.shard_version, Vec::new()))
                .1
                .push(&u.names);
        }
        for (index, (version, names)) in by_shard {
            let mut update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(shard_pk(store, product, index), "SHARD")))
                .condition_expression("version = :seen")
                .expression_attribute_values(":seen", n(version));
            let mut removed = Vec::new();
            for (i, name) in names.iter().flat_map(|n| n.all()).enumerate() {
                update = update.expression_attribute_names(format!("#r{i}"), name);
                removed.push(format!("#r{i}"));
            }
            let update = update.update_expression(format!("REMOVE {}", removed.join(", ")));
            actions.push(
                TransactWriteItem::builder()
                    .update(build(update.build())?)
                    .build(),
            );
        }
        self.transact(actions).await
    }
}

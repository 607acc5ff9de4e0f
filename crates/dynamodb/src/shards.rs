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
    async fn shard_attrs(
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
        marks: &[(MarkNames, TakeMark)],
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
                update = update
                    .expression_attribute_values(":k", n(spread.shards))
                    .expression_attribute_values(":e", n(spread.epoch));
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
    ) -> Result<(), StoreError> {
        for i in 0..shards {
            let r = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(shard_pk(store_id, product_id, i), "SHARD")))
                .update_expression("SET epoch = :frozen")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":frozen", n(0))
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
        // A collect: every shard's marks, read again in one snapshot at the versions the plan
        // read (a shard with marks and no units gets a write of its own to lose them).
        let mut writes: Vec<NodeWrite> = plan.writes.clone();
        let mut shard_marks: HashMap<u16, Vec<MarkNames>> = HashMap::new();
        let mut carried = Vec::new();
        if collecting {
            let item = self
                .get_consistent(key(item_pk(&plan.store_id, &plan.product_id), "ITEM"))
                .await?
                .ok_or(StoreError::Conflict)?;
            let shards = parse_item(&item)?.spread.map_or(0, |s| s.shards);
            let attrs = self
                .shard_attrs(&plan.store_id, &plan.product_id, shards)
                .await?;
            for (index, a) in (0..shards).zip(attrs) {
                let Some(a) = a else { continue };
                let pk = shard_pk(&plan.store_id, &plan.product_id, index);
                let version: u64 = get_n(&a, "version", &pk)?;
                let names = MarkNames::on(&a);
                match writes.iter().find(|w| w.shard == Some(index)) {
                    Some(w) if w.expected_version != version => return Err(StoreError::Conflict),
                    Some(_) => {}
                    None if names.is_empty() => continue,
                    None => writes.push(NodeWrite {
                        shard: Some(index),
                        expected_version: version,
                        available: get_n(&a, "available", &pk)?,
                        version: version + 1,
                    }),
                }
                for names in &names {
                    let mut mark = crate::takes::mark_named(&a, names)?;
                    mark.shard = mark.shard.or(Some(index));
                    // A recorded take's mark is dropped: its ledger entry names its order.
                    let entry = self
                        .ledger_entry_at(&plan.store_id, &plan.product_id, mark.shard, mark.version)
                        .await?;
                    let recorded = entry
                        .and_then(|e| e.cause.order_id)
                        .is_some_and(|o| MarkNames::of(&o) == *names);
                    if !recorded {
                        carried.push((names.clone(), mark));
                    }
                }
                shard_marks.insert(index, names);
            }
        }
        if carried.len() > MAX_CARRIED_MARKS {
            // The item's update expression would pass DynamoDB's 4 KB: the reconciler's sweep
            // of recorded marks, or the redeliveries of the takes, bring it down first.
            return Err(StoreError::Other(
                format!(
                    "{} takes not recorded yet on the shards of {}: a collect carries at most \
                     {MAX_CARRIED_MARKS}; try again once they are recorded",
                    carried.len(),
                    plan.product_id
                )
                .into(),
            ));
        }
        let epoch = plan.spread.filter(|_| spreading).map(|s| s.epoch);
        let moving = plan
            .spread
            .filter(|_| !spreading && !collecting)
            .map(|s| s.epoch);
        let mut actions = Vec::with_capacity(writes.len() + plan.ledger.len());
        for w in &writes {
            actions.push(match w.shard {
                None => self.item_write(plan, w, &carried)?,
                Some(i) => {
                    let marks = shard_marks.get(&i).map_or(&[][..], Vec::as_slice);
                    self.shard_write(plan, w, i, (epoch, moving), marks)?
                }
            });
        }
        for e in &plan.ledger {
            actions.push(self.ledger_put(e)?);
        }
        self.transact(actions).await
    }
}

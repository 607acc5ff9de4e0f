//! The in-memory store of orders, stock, the ledger and the switches.

use super::*;

/// Everything the in-memory store holds.
#[derive(Debug, Default, Clone)]
pub struct MemoryState {
    /// Items by (store, product).
    pub items: BTreeMap<(StoreId, ProductId), CatalogItem>,
    /// Orders.
    pub orders: BTreeMap<OrderId, OrderRecord>,
    /// Ledger entries in commit order.
    pub ledger: Vec<LedgerEntry>,
    /// The store each Payment Link was attached to.
    pub link_stores: BTreeMap<PaymentLinkId, StoreId>,
    /// What stockbridge knows of the links it made.
    pub link_terms: BTreeMap<PaymentLinkId, stockbridge_domain::LinkTerms>,
    /// Operator operations recorded by committed writes: id -> what.
    pub operations: BTreeMap<String, String>,
    /// Takes' marks on their items, until their orders are recorded.
    pub takes: BTreeMap<(StoreId, ProductId, OrderId), TakeMark>,
    /// The shard items of spread products, by index.
    pub shards: BTreeMap<(StoreId, ProductId), Vec<super::MemoryShard>>,
    /// Takes' marks on shards (the shard, the mark), until their orders are recorded or their
    /// product is collected (then they are in `takes`).
    pub shard_takes: BTreeMap<(StoreId, ProductId, OrderId), (u16, TakeMark)>,
    /// Merchants' restocks not yet announced to the waitlist, by (store, product, version).
    pub restocks: BTreeMap<(StoreId, ProductId, u64), stockbridge_domain::Restock>,
}

/// What an in-memory store holds, behind its handle ([`MemoryStore`]).
#[derive(Debug, Default)]
pub struct MemoryStoreParts {
    pub(super) state: Mutex<MemoryState>,
    /// Number of `commit` calls that wrote.
    pub commits: AtomicUsize,
    /// Number of `commit` calls refused for a conflict.
    pub conflicts: AtomicUsize,
    /// While > 0, `commit` is refused for a conflict (and decrements it): a busy item.
    pub inject_conflicts: AtomicUsize,
    /// Number of takes carried out.
    pub takes: AtomicUsize,
    /// While > 0, `record_take` fails as an unavailable store would, after the take and
    /// before the record (and decrements it): a crash between the two.
    pub fail_records: AtomicUsize,
    /// Counts per (key, window start) (as [`crate::ports::Counters`]).
    pub counters: Mutex<BTreeMap<(String, i64), u32>>,
    /// The operator's switches.
    pub controls: Mutex<crate::ports::Controls>,
    /// Each store's returns policy (absent: the default, off).
    pub returns: Mutex<BTreeMap<StoreId, stockbridge_domain::after_sale::ReturnsPolicy>>,
    /// Parked and retrying items (as a [`crate::parking::ParkingLot`]).
    pub parking: Mutex<BTreeMap<String, crate::parking::Parked>>,
    pub(super) recorded: Mutex<Vec<Recorded>>,
    pub(super) catalog: Mutex<MemoryCatalog>,
    /// The replay cursor (as a [`crate::ports::CursorStore`]).
    pub cursor: MemoryCursor,
    /// The waitlist's entries and announced restocks (as a [`crate::ports::Waitlist`]).
    pub waitlist: Mutex<super::MemoryWaitlist>,
}

/// An in-memory [`InventoryStore`]: a cheap-`Clone` handle (clones share one state, like `mini-redis`'s `Db`), so a test
/// keeps one to look inside while the use case holds another.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore(std::sync::Arc<MemoryStoreParts>);

impl std::ops::Deref for MemoryStore {
    type Target = MemoryStoreParts;

    fn deref(&self) -> &MemoryStoreParts {
        &self.0
    }
}

impl MemoryStore {
    /// Adds or replaces a catalog item.
    pub fn put_item(&self, item: CatalogItem) {
        lock(&self.state)
            .items
            .insert((item.store_id.clone(), item.product_id.clone()), item);
    }

    /// Stores an order record as it is (a test setting the scene: another delivery's record).
    pub fn put_order(&self, order: OrderRecord) {
        lock(&self.state)
            .orders
            .insert(order.order_id.clone(), order);
    }

    /// A copy of the state.
    pub fn snapshot(&self) -> MemoryState {
        lock(&self.state).clone()
    }
}

impl MemoryStore {
    /// `commit` without the spread guard: a give-back writes a spread item.
    fn commit_any(&self, write: &WriteSet) -> Result<(), StoreError> {
        let mut s = lock(&self.state);
        let conflict = || {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
            Err(StoreError::Conflict)
        };
        if self
            .inject_conflicts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return conflict();
        }
        if write
            .operation
            .as_ref()
            .is_some_and(|op| s.operations.contains_key(&op.id))
        {
            return conflict();
        }
        match &write.order {
            Some(OrderWrite::Create(r)) if s.orders.contains_key(&r.order_id) => return conflict(),
            Some(OrderWrite::Update {
                record,
                expected_status,
                expected_payment,
                expected_after_sale,
            }) if s.orders.get(&record.order_id).map(|o| {
                let refund_kept = record.refund_id.is_some() || o.refund_id.is_none();
                (o.status, o.payment, o.after_sale_revision(), refund_kept)
            }) != Some((
                *expected_status,
                *expected_payment,
                *expected_after_sale,
                true,
            )) =>
            {
                return conflict();
            }
            _ => {}
        }
        for u in &write.items {
            match s.items.get(&(u.store_id.clone(), u.product_id.clone())) {
                Some(i)
                    if i.version == u.expected_version
                        && i.deactivated_links == u.expected_deactivated_links => {}
                _ => return conflict(),
            }
        }
        for (store, product, version) in &write.checks {
            match s.items.get(&(store.clone(), product.clone())) {
                Some(i) if i.version == *version => {}
                _ => return conflict(),
            }
        }
        match &write.order {
            Some(OrderWrite::Create(r)) | Some(OrderWrite::Update { record: r, .. }) => {
                s.orders.insert(r.order_id.clone(), r.clone());
            }
            None => {}
        }
        for u in &write.items {
            if let Some(i) = s.items.get_mut(&(u.store_id.clone(), u.product_id.clone())) {
                i.available = u.available;
                i.held = u.held;
                i.version = u.version;
                i.deactivated_links = u.deactivated_links.clone();
                i.updated_at = u.at;
                i.managed_since = u.managed_since;
            }
        }
        s.ledger.extend(write.ledger.iter().cloned());
        if let Some(op) = &write.operation {
            s.operations.insert(op.id.clone(), op.what.clone());
        }
        if let Some(r) = &write.restock {
            let key = (r.store_id.clone(), r.product_id.clone(), r.version);
            s.restocks.insert(key, r.clone());
        }
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn take_item(&self, take: &StockTake) -> Result<Option<TakeMark>, StoreError> {
        let mut s = lock(&self.state);
        let mark = (
            take.store_id.clone(),
            take.product_id.clone(),
            take.order_id.clone(),
        );
        if s.takes.contains_key(&mark) {
            return Ok(None);
        }
        let key = (take.store_id.clone(), take.product_id.clone());
        let Some(i) = s.items.get_mut(&key) else {
            return Ok(None);
        };
        if i.available <= take.quantity
            || i.managed_since != take.managed_since
            || !i.deactivated_links.is_empty()
        {
            return Ok(None);
        }
        i.available -= take.quantity;
        i.version += 1;
        i.updated_at = take.at;
        let made = TakeMark {
            version: i.version,
            available: i.available,
            held: i.held,
            quantity: take.quantity,
            shard: None,
        };
        s.takes.insert(mark, made);
        self.takes.fetch_add(1, Ordering::Relaxed);
        Ok(Some(made))
    }
}

impl crate::ports::ControlStore for MemoryStore {
    async fn set_control(
        &self,
        control: crate::ports::Control,
        paused: bool,
    ) -> Result<(), StoreError> {
        let mut c = lock(&self.controls);
        match control {
            crate::ports::Control::Repairs => c.repairs_paused = paused,
            crate::ports::Control::Links => c.links_paused = paused,
            crate::ports::Control::Refunds => c.refunds_paused = paused,
        }
        Ok(())
    }
}

impl crate::ports::StoreSettings for MemoryStore {
    async fn returns_policy(
        &self,
        store: &StoreId,
    ) -> Result<stockbridge_domain::after_sale::ReturnsPolicy, StoreError> {
        Ok(lock(&self.returns).get(store).copied().unwrap_or_default())
    }

    async fn set_returns_policy(
        &self,
        store: &StoreId,
        policy: stockbridge_domain::after_sale::ReturnsPolicy,
    ) -> Result<(), StoreError> {
        lock(&self.returns).insert(store.clone(), policy);
        Ok(())
    }
}

impl InventoryStore for MemoryStore {
    async fn operation_recorded(&self, operation: &str) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.state).operations.get(operation).cloned())
    }

    async fn controls(&self) -> Result<crate::ports::Controls, StoreError> {
        Ok(*lock(&self.controls))
    }

    async fn load(
        &self,
        order_id: &OrderId,
        store_id: &StoreId,
        products: &[ProductId],
    ) -> Result<(Option<OrderRecord>, Items), StoreError> {
        let s = lock(&self.state);
        let items = products
            .iter()
            .filter_map(|p| {
                s.items.get(&(store_id.clone(), p.clone())).map(|i| {
                    let mut i = i.clone();
                    let mark = (store_id.clone(), p.clone(), order_id.clone());
                    i.unrecorded_take = s.takes.get(&mark).copied();
                    (p.clone(), i)
                })
            })
            .collect();
        Ok((s.orders.get(order_id).cloned(), items))
    }

    async fn load_order(&self, order_id: &OrderId) -> Result<Option<OrderRecord>, StoreError> {
        Ok(lock(&self.state).orders.get(order_id).cloned())
    }

    async fn commit(&self, write: &WriteSet) -> Result<(), StoreError> {
        // A spread item's units are in its shards: only a regroup or a give-back writes it.
        let spread = {
            let s = lock(&self.state);
            let is_spread = |store: &StoreId, product: &ProductId| {
                s.items
                    .get(&(store.clone(), product.clone()))
                    .is_some_and(|i| i.spread.is_some())
            };
            write
                .items
                .iter()
                .any(|u| is_spread(&u.store_id, &u.product_id))
                || write.checks.iter().any(|(st, p, _)| is_spread(st, p))
        };
        if spread {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Conflict);
        }
        self.commit_any(write)
    }

    async fn take_stock(&self, take: &StockTake) -> Result<Option<TakeMark>, StoreError> {
        if let Some((index, epoch)) = take.shard {
            let made = lock(&self.state).take_from_shard(take, index, epoch);
            if made.is_some() {
                self.takes.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(made);
        }
        self.take_item(take)
    }

    async fn record_take(&self, take: &StockTake, write: &WriteSet) -> Result<(), StoreError> {
        if self
            .fail_records
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Unavailable(
                "injected: the record was lost".into(),
            ));
        }
        self.commit(write).await?;
        let key = (
            take.store_id.clone(),
            take.product_id.clone(),
            take.order_id.clone(),
        );
        let mut s = lock(&self.state);
        match take.shard {
            Some((index, _)) if s.shard_takes.get(&key).is_some_and(|(i, _)| *i == index) => {
                s.shard_takes.remove(&key);
            }
            _ => {
                s.takes.remove(&key);
            }
        }
        Ok(())
    }

    async fn ledger_entry(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        shard: Option<u16>,
        version: u64,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        Ok(lock(&self.state)
            .ledger
            .iter()
            .find(|e| {
                &e.store_id == store_id
                    && &e.product_id == product_id
                    && e.shard == shard
                    && e.version == version
            })
            .cloned())
    }

    async fn undo_take(
        &self,
        order_id: &OrderId,
        mark: TakeMark,
        on: Option<u16>,
        write: &WriteSet,
    ) -> Result<(), StoreError> {
        let [update] = write.items.as_slice() else {
            return Err(StoreError::Other("an undo writes one item".into()));
        };
        let key = (
            update.store_id.clone(),
            update.product_id.clone(),
            order_id.clone(),
        );
        {
            let s = lock(&self.state);
            let duplicate_entry = write.ledger.iter().any(|e| {
                s.ledger.iter().any(|l| {
                    l.store_id == e.store_id
                        && l.product_id == e.product_id
                        && l.shard == e.shard
                        && l.version == e.version
                })
            });
            let marked = match on {
                None => s.takes.get(&key) == Some(&mark),
                Some(i) => s.shard_takes.get(&key) == Some(&(i, mark)),
            };
            if !marked || duplicate_entry {
                self.conflicts.fetch_add(1, Ordering::Relaxed);
                return Err(StoreError::Conflict);
            }
        }
        self.commit_any(write)?;
        let mut s = lock(&self.state);
        match on {
            None => s.takes.remove(&key),
            Some(_) => s.shard_takes.remove(&key).map(|(_, m)| m),
        };
        Ok(())
    }

    async fn forget_recorded_takes(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
    ) -> Result<usize, StoreError> {
        let mut s = lock(&self.state);
        // A mark goes once the ledger entry at its version (on the shard it took from) is its
        // order's.
        let recorded = |s: &MemoryState, o: &OrderId, m: &TakeMark| {
            s.ledger.iter().any(|e| {
                &e.store_id == store_id
                    && &e.product_id == product_id
                    && e.shard == m.shard
                    && e.version == m.version
                    && e.cause.order_id.as_ref() == Some(o)
            })
        };
        let on_item: Vec<_> = s
            .takes
            .iter()
            .filter(|((st, p, o), m)| st == store_id && p == product_id && recorded(&s, o, m))
            .map(|(k, _)| k.clone())
            .collect();
        let on_shards: Vec<_> = s
            .shard_takes
            .iter()
            .filter(|((st, p, o), (_, m))| st == store_id && p == product_id && recorded(&s, o, m))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &on_item {
            s.takes.remove(k);
        }
        for k in &on_shards {
            s.shard_takes.remove(k);
        }
        Ok(on_item.len() + on_shards.len())
    }

    async fn record_refund(
        &self,
        order_id: &OrderId,
        refund_id: &RefundId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = lock(&self.state);
        let o = s
            .orders
            .get_mut(order_id)
            .ok_or_else(|| StoreError::NotFound(order_id.to_string()))?;
        o.refund_id = Some(refund_id.clone());
        o.updated_at = at;
        Ok(())
    }

    async fn item(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
    ) -> Result<Option<CatalogItem>, StoreError> {
        let s = lock(&self.state);
        Ok(s.items
            .get(&(store_id.clone(), product_id.clone()))
            .map(|i| s.with_shards(i)))
    }

    async fn clear_deactivated(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        links: &[PaymentLinkId],
    ) -> Result<(), StoreError> {
        let mut s = lock(&self.state);
        if let Some(i) = s
            .items
            .get_mut(&(store_id.clone(), product_id.clone()))
            .filter(|i| i.available > 0)
        {
            i.deactivated_links.retain(|l| !links.contains(l));
        }
        Ok(())
    }

    async fn create_item(&self, item: &CatalogItem, entry: &LedgerEntry) -> Result<(), StoreError> {
        let mut s = lock(&self.state);
        let key = (item.store_id.clone(), item.product_id.clone());
        if s.items.contains_key(&key) {
            return Err(StoreError::Conflict);
        }
        for l in &item.payment_links {
            s.link_stores.insert(l.clone(), item.store_id.clone());
        }
        s.items.insert(key, item.clone());
        s.ledger.push(entry.clone());
        Ok(())
    }

    async fn update_item_details(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        name: &str,
        links: &[PaymentLinkId],
    ) -> Result<(), StoreError> {
        let mut s = lock(&self.state);
        let i = s
            .items
            .get_mut(&(store_id.clone(), product_id.clone()))
            .ok_or_else(|| StoreError::NotFound(format!("{store_id}/{product_id}")))?;
        i.name = name.to_owned();
        i.payment_links = links.to_vec();
        for l in links {
            s.link_stores.insert(l.clone(), store_id.clone());
        }
        Ok(())
    }

    async fn link_store(&self, link: &PaymentLinkId) -> Result<Option<StoreId>, StoreError> {
        Ok(lock(&self.state).link_stores.get(link).cloned())
    }

    async fn link_terms(
        &self,
        link: &PaymentLinkId,
    ) -> Result<Option<stockbridge_domain::LinkTerms>, StoreError> {
        Ok(lock(&self.state).link_terms.get(link).cloned())
    }

    async fn remember_link_terms(
        &self,
        link: &PaymentLinkId,
        terms: &stockbridge_domain::LinkTerms,
    ) -> Result<(), StoreError> {
        lock(&self.state)
            .link_terms
            .insert(link.clone(), terms.clone());
        Ok(())
    }
}

//! In-memory implementations of every port, for handler tests and benchmarks. They keep the
//! same contracts as the real adapters: `commit` is all-or-nothing with the same conditions, and
//! refunds honour idempotency keys.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use stockbridge_domain::{
    CatalogItem, Items, LedgerEntry, OrderId, OrderRecord, OrderWrite, PaymentLinkId, ProductId,
    RefundId, RefundRequest, StockLevel, StoreId, Timestamp, WriteSet,
    take::{StockTake, TakeMark},
};

use crate::ports::{
    Clock, InventoryStore, Payments, PaymentsError, PublishError, SessionLine, StockPublisher,
    StoreError,
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

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
}

/// An in-memory [`InventoryStore`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<MemoryState>,
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
    /// Parked and retrying items (as a [`crate::parking::ParkingLot`]).
    pub parking: Mutex<BTreeMap<String, crate::parking::Parked>>,
    recorded: Mutex<Vec<Recorded>>,
    catalog: Mutex<MemoryCatalog>,
    /// The replay cursor (as a [`crate::ports::CursorStore`]).
    pub cursor: MemoryCursor,
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
            }) if s
                .orders
                .get(&record.order_id)
                .map(|o| (o.status, o.payment))
                != Some((*expected_status, *expected_payment)) =>
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
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn take_stock(&self, take: &StockTake) -> Result<Option<TakeMark>, StoreError> {
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
        };
        s.takes.insert(mark, made);
        self.takes.fetch_add(1, Ordering::Relaxed);
        Ok(Some(made))
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
        lock(&self.state).takes.remove(&(
            take.store_id.clone(),
            take.product_id.clone(),
            take.order_id.clone(),
        ));
        Ok(())
    }

    async fn ledger_entry(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        version: u64,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        Ok(lock(&self.state)
            .ledger
            .iter()
            .find(|e| {
                &e.store_id == store_id && &e.product_id == product_id && e.version == version
            })
            .cloned())
    }

    async fn undo_take(
        &self,
        order_id: &OrderId,
        mark: TakeMark,
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
                        && l.version == e.version
                })
            });
            if s.takes.get(&key) != Some(&mark) || duplicate_entry {
                self.conflicts.fetch_add(1, Ordering::Relaxed);
                return Err(StoreError::Conflict);
            }
        }
        self.commit(write).await?;
        lock(&self.state).takes.remove(&key);
        Ok(())
    }

    async fn forget_recorded_takes(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
    ) -> Result<usize, StoreError> {
        let mut s = lock(&self.state);
        let recorded: Vec<_> = s
            .takes
            .keys()
            .filter(|(st, p, o)| {
                st == store_id
                    && p == product_id
                    && s.ledger.iter().any(|e| {
                        &e.store_id == st
                            && &e.product_id == p
                            && Some(e.version)
                                == s.takes
                                    .get(&(st.clone(), p.clone(), o.clone()))
                                    .map(|m| m.version)
                            && e.cause.order_id.as_ref() == Some(o)
                    })
            })
            .cloned()
            .collect();
        for k in &recorded {
            s.takes.remove(k);
        }
        Ok(recorded.len())
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
        Ok(lock(&self.state)
            .items
            .get(&(store_id.clone(), product_id.clone()))
            .cloned())
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

/// An in-memory [`StockPublisher`] that records every message; can be told to fail.
#[derive(Debug, Default)]
pub struct MemoryPublisher {
    /// Published levels in order.
    pub published: Mutex<Vec<StockLevel>>,
    /// While > 0, publishes fail (and decrement it).
    pub fail_next: AtomicUsize,
}

impl MemoryPublisher {
    /// The latest level per (store, product) by version — what a version-aware client shows.
    pub fn latest(&self) -> HashMap<(StoreId, ProductId), StockLevel> {
        let mut out: HashMap<(StoreId, ProductId), StockLevel> = HashMap::new();
        for l in lock(&self.published).iter() {
            let k = (l.store_id.clone(), l.product_id.clone());
            if out.get(&k).is_none_or(|old| old.version <= l.version) {
                out.insert(k, l.clone());
            }
        }
        out
    }
}

impl StockPublisher for MemoryPublisher {
    async fn publish(&self, level: &StockLevel) -> Result<(), PublishError> {
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(PublishError {
                topic: level.product_id.to_string(),
                source: "injected failure".into(),
            });
        }
        lock(&self.published).push(level.clone());
        Ok(())
    }
}

/// An in-memory [`Payments`]: sessions' lines, links' active flags and idempotent refunds.
#[derive(Debug, Default)]
pub struct MemoryPayments {
    /// Lines per session.
    pub sessions: Mutex<HashMap<OrderId, Vec<SessionLine>>>,
    /// Active flag per link (absent = active).
    pub links: Mutex<HashMap<PaymentLinkId, bool>>,
    /// The message each link shows while off, as the last switch set it.
    pub link_messages: Mutex<HashMap<PaymentLinkId, String>>,
    /// Refunds by idempotency key: (payment intent, refund id).
    pub refunds: Mutex<BTreeMap<String, (String, RefundId)>>,
    /// Calls made, by operation.
    pub calls: Mutex<Vec<&'static str>>,
    /// While > 0, link switches fail (and decrement it).
    pub fail_links: AtomicUsize,
    /// Where each session's payment stands (absent: still pending).
    pub session_payments: Mutex<HashMap<OrderId, crate::ports::SessionPayment>>,
    /// Completed sessions, as Stripe would list them.
    pub completed: Mutex<Vec<crate::ports::SessionSummary>>,
    /// Products, prices and links.
    pub catalog: Mutex<MemoryStripeCatalog>,
    /// List pages served before one fails (`None`: never), to interrupt a backfill.
    pub pages_before_failure: Mutex<Option<usize>>,
    /// Stripe's event log (as a [`crate::ports::EventLog`]).
    pub event_log: MemoryEventLog,
    /// PaymentIntents by idempotency key.
    pub intents: Mutex<HashMap<String, MemoryIntent>>,
    /// The amount of each refund by idempotency key (`None`: in full).
    pub refund_amounts: Mutex<BTreeMap<String, Option<u64>>>,
    /// PaymentIntents Stripe refuses to refund (a disputed charge, a method that cannot refund).
    pub refuse_refunds: Mutex<std::collections::BTreeSet<String>>,
    /// Set: Stripe refuses to create PaymentIntents with this message (a 400).
    pub refuse_intents: Mutex<Option<String>>,
    /// While > 0, creating a PaymentIntent fails as an outage would (and decrements it).
    pub fail_intents: AtomicUsize,
}

impl MemoryPayments {
    /// Registers a session's lines.
    pub fn add_session(&self, id: &OrderId, lines: Vec<SessionLine>) {
        lock(&self.sessions).insert(id.clone(), lines);
    }

    /// Whether a link is active.
    pub fn link_active(&self, link: &PaymentLinkId) -> bool {
        lock(&self.links).get(link).copied().unwrap_or(true)
    }
}

impl Payments for MemoryPayments {
    async fn line_items(&self, session: &OrderId) -> Result<Vec<SessionLine>, PaymentsError> {
        lock(&self.calls).push("line_items");
        lock(&self.sessions)
            .get(session)
            .cloned()
            .ok_or_else(|| PaymentsError::Rejected {
                operation: "list line items",
                message: format!("No such checkout.session: {session}"),
            })
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RefundId, PaymentsError> {
        lock(&self.calls).push("refund");
        if lock(&self.refuse_refunds).contains(request.payment_intent.as_str()) {
            return Err(PaymentsError::Rejected {
                operation: "refund",
                message: format!("Charge for {} has been disputed", request.payment_intent),
            });
        }
        let mut refunds = lock(&self.refunds);
        if let Some((_, id)) = refunds.get(&request.idempotency_key) {
            return Ok(id.clone());
        }
        let id = RefundId::parse(format!("re_{}", refunds.len() + 1)).map_err(|e| {
            PaymentsError::Invalid {
                operation: "refund",
                message: e.to_string(),
            }
        })?;
        refunds.insert(
            request.idempotency_key.clone(),
            (request.payment_intent.to_string(), id.clone()),
        );
        lock(&self.refund_amounts).insert(request.idempotency_key.clone(), request.amount);
        Ok(id)
    }

    async fn set_link_active(
        &self,
        link: &PaymentLinkId,
        active: bool,
        msg: Option<&str>,
    ) -> Result<crate::ports::LinkSwitch, PaymentsError> {
        lock(&self.calls).push("read_link");
        if self.link_active(link) == active {
            return Ok(crate::ports::LinkSwitch::Unchanged {
                inactive_message: lock(&self.link_messages).get(link).cloned(),
            });
        }
        lock(&self.calls).push("set_link_active");
        if self
            .fail_links
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(PaymentsError::Unavailable {
                operation: "update payment link",
                message: "injected failure".into(),
            });
        }
        lock(&self.links).insert(link.clone(), active);
        // As the Stripe adapter: switching on clears the message, switching off sets it.
        match msg.filter(|_| !active) {
            Some(m) => lock(&self.link_messages).insert(link.clone(), m.to_owned()),
            None if active => lock(&self.link_messages).remove(link),
            None => None,
        };
        Ok(crate::ports::LinkSwitch::Switched)
    }

    async fn create_payment_intent(
        &self,
        request: &crate::ports::NewPaymentIntent,
    ) -> Result<crate::ports::CreatedPaymentIntent, PaymentsError> {
        lock(&self.calls).push("create_payment_intent");
        if let Some(message) = lock(&self.refuse_intents).clone() {
            return Err(PaymentsError::Refused {
                operation: "create payment intent",
                message,
            });
        }
        if self
            .fail_intents
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(PaymentsError::Unavailable {
                operation: "create payment intent",
                message: "injected outage".into(),
            });
        }
        let mut intents = lock(&self.intents);
        let n = intents.len();
        let entry = intents
            .entry(request.idempotency_key.clone())
            .or_insert_with(|| MemoryIntent {
                id: stockbridge_domain::PaymentIntentId::parse(format!("pi_{}", n + 1))
                    .expect("valid id"),
                amount: request.amount,
                status: "requires_payment_method",
            });
        Ok(crate::ports::CreatedPaymentIntent {
            id: entry.id.clone(),
            client_secret: format!("{}_secret_test", entry.id),
        })
    }

    async fn capture_payment_intent(
        &self,
        payment_intent: &stockbridge_domain::PaymentIntentId,
        _key: &str,
    ) -> Result<(), PaymentsError> {
        lock(&self.calls).push("capture");
        self.intent_transition(payment_intent, "succeeded")
    }

    async fn cancel_payment_intent(
        &self,
        payment_intent: &stockbridge_domain::PaymentIntentId,
        _key: &str,
    ) -> Result<(), PaymentsError> {
        lock(&self.calls).push("cancel");
        self.intent_transition(payment_intent, "canceled")
    }

    async fn payment_intent_status(
        &self,
        payment_intent: &stockbridge_domain::PaymentIntentId,
    ) -> Result<crate::ports::IntentStatus, PaymentsError> {
        lock(&self.calls).push("read_intent");
        self.intent_status(payment_intent)
            .map(crate::ports::IntentStatus::parse)
            .ok_or_else(|| PaymentsError::NotFound {
                operation: "read payment intent",
                message: payment_intent.to_string(),
            })
    }
}

/// A PaymentIntent as [`MemoryPayments`] keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryIntent {
    /// Its id.
    pub id: stockbridge_domain::PaymentIntentId,
    /// Amount.
    pub amount: u64,
    /// `requires_payment_method`, `requires_capture`, `succeeded`, `canceled`.
    pub status: &'static str,
}

impl MemoryPayments {
    /// Marks a PaymentIntent authorised (as confirming it in the browser would).
    pub fn authorize(&self, id: &stockbridge_domain::PaymentIntentId) {
        if let Some(i) = lock(&self.intents).values_mut().find(|i| &i.id == id) {
            i.status = "requires_capture";
        }
    }

    /// Sets a PaymentIntent's status as Stripe would on its own (an authorisation that lapsed:
    /// `canceled`).
    pub fn set_intent_status(&self, id: &stockbridge_domain::PaymentIntentId, to: &'static str) {
        if let Some(i) = lock(&self.intents).values_mut().find(|i| &i.id == id) {
            i.status = to;
        }
    }

    /// A PaymentIntent's status.
    pub fn intent_status(&self, id: &stockbridge_domain::PaymentIntentId) -> Option<&'static str> {
        lock(&self.intents)
            .values()
            .find(|i| &i.id == id)
            .map(|i| i.status)
    }

    fn intent_transition(
        &self,
        id: &stockbridge_domain::PaymentIntentId,
        to: &'static str,
    ) -> Result<(), PaymentsError> {
        let mut intents = lock(&self.intents);
        let i =
            intents
                .values_mut()
                .find(|i| &i.id == id)
                .ok_or_else(|| PaymentsError::NotFound {
                    operation: "payment intent",
                    message: id.to_string(),
                })?;
        let allowed = match to {
            "succeeded" => i.status == "requires_capture",
            _ => i.status != "succeeded" && i.status != "canceled",
        };
        if i.status == to {
            return Ok(()); // the same call again (a replayed idempotency key)
        }
        if !allowed {
            return Err(PaymentsError::UnexpectedState {
                operation: "payment intent",
                message: format!("status {}", i.status),
            });
        }
        i.status = to;
        Ok(())
    }
}

/// A clock that ticks one millisecond per call, from a start.
#[derive(Debug)]
pub struct TickingClock(pub AtomicI64);

impl Default for TickingClock {
    fn default() -> Self {
        Self(AtomicI64::new(1_761_935_276_000))
    }
}

impl Clock for TickingClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.fetch_add(1, Ordering::Relaxed))
    }
}

/// An in-memory Stripe event log, oldest first.
#[derive(Debug, Default)]
pub struct MemoryEventLog {
    /// Events in creation order.
    pub events: Mutex<Vec<crate::ports::LoggedEvent>>,
}

impl crate::ports::EventLog for MemoryEventLog {
    async fn events_between(
        &self,
        types: &[&str],
        from: i64,
        to: i64,
    ) -> Result<Vec<crate::ports::LoggedEvent>, PaymentsError> {
        let mut out: Vec<_> = lock(&self.events)
            .iter()
            .filter(|e| {
                (from..=to).contains(&e.created)
                    && e.event
                        .get("type")
                        .and_then(|t| t.as_str())
                        .is_some_and(|t| types.contains(&t))
            })
            .cloned()
            .collect();
        // Stable: events of one second keep the log's order.
        out.sort_by_key(|e| e.created);
        Ok(out)
    }
}

/// An in-memory replay cursor.
#[derive(Debug, Default)]
pub struct MemoryCursor(pub Mutex<Option<crate::ports::Cursor>>);

impl crate::ports::CursorStore for MemoryCursor {
    async fn cursor(&self) -> Result<Option<crate::ports::Cursor>, StoreError> {
        Ok(lock(&self.0).clone())
    }

    async fn advance_cursor(
        &self,
        previous: Option<&crate::ports::Cursor>,
        next: &crate::ports::Cursor,
    ) -> Result<(), StoreError> {
        let mut c = lock(&self.0);
        if c.as_ref() != previous {
            return Err(StoreError::Conflict);
        }
        *c = Some(next.clone());
        Ok(())
    }
}

impl MemoryStore {
    /// Every order matching `keep`, of one store or all.
    fn orders_where(
        &self,
        store_id: Option<&StoreId>,
        keep: impl Fn(&OrderRecord) -> bool,
    ) -> Vec<OrderRecord> {
        lock(&self.state)
            .orders
            .values()
            .filter(|o| store_id.is_none_or(|s| &o.store_id == s) && keep(o))
            .cloned()
            .collect()
    }
}

impl crate::ports::CatalogReader for MemoryStore {
    async fn store_items(&self, store_id: &StoreId) -> Result<Vec<CatalogItem>, StoreError> {
        Ok(lock(&self.state)
            .items
            .values()
            .filter(|i| &i.store_id == store_id)
            .cloned()
            .collect())
    }

    async fn all_items(&self) -> Result<Vec<CatalogItem>, StoreError> {
        Ok(lock(&self.state).items.values().cloned().collect())
    }

    async fn oversold_orders(
        &self,
        store_id: Option<&StoreId>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        Ok(self.orders_where(store_id, |o| {
            o.status == stockbridge_domain::OrderStatus::Oversold
        }))
    }

    async fn awaiting_orders(
        &self,
        store_id: Option<&StoreId>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        Ok(self.orders_where(store_id, |o| {
            o.payment == stockbridge_domain::PaymentState::Awaiting && o.hold.is_none()
        }))
    }

    async fn pending_orders(
        &self,
        store_id: Option<&StoreId>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        Ok(self.orders_where(store_id, |o| {
            o.status == stockbridge_domain::OrderStatus::Pending
        }))
    }

    async fn expired_holds(
        &self,
        now: Timestamp,
        after: Option<&crate::ports::HoldKey>,
        limit: u32,
    ) -> Result<crate::ports::HoldPage, StoreError> {
        let mut holds: Vec<crate::ports::HoldKey> = lock(&self.state)
            .orders
            .values()
            .filter(|o| o.status == stockbridge_domain::OrderStatus::Pending)
            .filter_map(|o| {
                let h = o.hold.as_ref().filter(|h| h.expires_at <= now)?;
                Some(crate::ports::HoldKey {
                    expires_at: h.expires_at,
                    order_id: o.order_id.clone(),
                })
            })
            .filter(|k| after.is_none_or(|a| k > a))
            .collect();
        holds.sort();
        let limit = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
        let next = (holds.len() > limit).then(|| holds[limit - 1].clone());
        holds.truncate(limit);
        Ok(crate::ports::HoldPage { holds, next })
    }
}

/// Discrepancies recorded by [`MemoryStore`] as a [`crate::ports::ReconciliationLog`].
pub type Recorded = (Timestamp, stockbridge_domain::invariants::Discrepancy, bool);

impl MemoryStore {
    /// The discrepancies recorded so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        lock(&self.recorded).clone()
    }
}

impl crate::ports::ReconciliationLog for MemoryStore {
    async fn record(
        &self,
        at: Timestamp,
        d: &stockbridge_domain::invariants::Discrepancy,
        repaired: bool,
    ) -> Result<(), StoreError> {
        lock(&self.recorded).push((at, d.clone(), repaired));
        Ok(())
    }
}

impl crate::ports::LinkDirectory for MemoryPayments {
    async fn link_summary(
        &self,
        link: &PaymentLinkId,
    ) -> Result<crate::ports::LinkSummary, PaymentsError> {
        Ok(crate::ports::LinkSummary {
            url: format!("https://buy.stripe.test/{link}"),
            active: self.link_active(link),
            unit_amount: None,
            currency: None,
            product_name: None,
            description: None,
            images: Vec::new(),
        })
    }

    async fn link_active(&self, link: &PaymentLinkId) -> Result<Option<bool>, PaymentsError> {
        Ok(Some(MemoryPayments::link_active(self, link)))
    }
}

impl crate::ports::SessionLog for MemoryPayments {
    async fn completed_sessions_since(
        &self,
        since: i64,
    ) -> Result<Vec<crate::ports::SessionSummary>, PaymentsError> {
        Ok(lock(&self.completed)
            .iter()
            .filter(|s| s.created >= since)
            .cloned()
            .collect())
    }

    async fn session_payment(
        &self,
        session: &OrderId,
    ) -> Result<crate::ports::SessionPayment, PaymentsError> {
        lock(&self.calls).push("read_session");
        Ok(lock(&self.session_payments)
            .get(session)
            .copied()
            .unwrap_or(crate::ports::SessionPayment::Pending))
    }
}

/// The in-memory catalog ([`crate::ports::CatalogStore`] of [`MemoryStore`]).
#[derive(Debug, Default, Clone)]
pub struct MemoryCatalog {
    /// Details and mapping by product.
    pub entries: BTreeMap<ProductId, crate::ports::CatalogEntry>,
    /// Named checkpoints.
    pub checkpoints: HashMap<String, String>,
    /// Mappings written before their product's details (as DynamoDB allows).
    pub orphan_mappings: BTreeMap<ProductId, stockbridge_domain::StripeMapping>,
}

impl MemoryStore {
    /// A copy of the catalog.
    pub fn catalog(&self) -> MemoryCatalog {
        lock(&self.catalog).clone()
    }
}

impl crate::ports::CatalogStore for MemoryStore {
    async fn entry(
        &self,
        product: &ProductId,
    ) -> Result<Option<crate::ports::CatalogEntry>, StoreError> {
        Ok(lock(&self.catalog).entries.get(product).cloned())
    }

    async fn entries(
        &self,
        products: &[ProductId],
    ) -> Result<HashMap<ProductId, crate::ports::CatalogEntry>, StoreError> {
        let c = lock(&self.catalog);
        Ok(products
            .iter()
            .filter_map(|p| c.entries.get(p).map(|e| (p.clone(), e.clone())))
            .collect())
    }

    async fn put_details(
        &self,
        details: &stockbridge_domain::ProductDetails,
        expected_revision: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut c = lock(&self.catalog);
        let current = c
            .entries
            .get(&details.product_id)
            .map(|e| e.details.revision);
        if current != expected_revision {
            return Err(StoreError::Conflict);
        }
        let mapping = match c.entries.get(&details.product_id) {
            Some(e) => e.mapping.clone(),
            None => c
                .orphan_mappings
                .remove(&details.product_id)
                .unwrap_or_default(),
        };
        c.entries.insert(
            details.product_id.clone(),
            crate::ports::CatalogEntry {
                details: details.clone(),
                mapping,
            },
        );
        Ok(())
    }

    async fn save_mapping(
        &self,
        product: &ProductId,
        mapping: &stockbridge_domain::StripeMapping,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let mut c = lock(&self.catalog);
        let current = match c.entries.get_mut(product) {
            Some(e) => &mut e.mapping,
            None => c.orphan_mappings.entry(product.clone()).or_default(),
        };
        if current.version != expected_version {
            return Err(StoreError::Conflict);
        }
        *current = mapping.clone();
        Ok(())
    }

    async fn scan_entries(
        &self,
        segment: u32,
        segments: u32,
        start: Option<String>,
    ) -> Result<(Vec<crate::ports::CatalogEntry>, Option<String>), StoreError> {
        const PAGE: usize = 100;
        let c = lock(&self.catalog);
        let in_segment = |p: &ProductId| {
            let h = p
                .as_str()
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            h % segments.max(1) == segment
        };
        let from = start.as_deref().unwrap_or("");
        let page: Vec<_> = c
            .entries
            .iter()
            .filter(|(p, _)| p.as_str() > from && in_segment(p))
            .take(PAGE)
            .map(|(_, e)| e.clone())
            .collect();
        let next = (page.len() == PAGE).then(|| page[PAGE - 1].details.product_id.to_string());
        Ok((page, next))
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.catalog).checkpoints.get(name).cloned())
    }

    async fn save_checkpoint(&self, name: &str, value: &str) -> Result<(), StoreError> {
        lock(&self.catalog)
            .checkpoints
            .insert(name.to_owned(), value.to_owned());
        Ok(())
    }
}

/// Stripe's catalog as [`MemoryPayments`] holds it.
#[derive(Debug, Default, Clone)]
pub struct MemoryStripeCatalog {
    /// Products.
    pub products: BTreeMap<ProductId, stockbridge_domain::StripeProduct>,
    /// Prices, in creation order.
    pub prices: Vec<stockbridge_domain::StripePrice>,
    /// Links made through the catalog API (their active flag lives in `MemoryPayments::links`).
    pub links: Vec<stockbridge_domain::StripeLink>,
    /// Objects created per idempotency key (a replay answers the first result).
    pub keys: HashMap<String, String>,
}

impl MemoryPayments {
    /// A copy of the Stripe catalog.
    pub fn stripe_catalog(&self) -> MemoryStripeCatalog {
        lock(&self.catalog).clone()
    }

    /// Adds a link as someone in the Dashboard would (no metadata).
    pub fn add_foreign_link(
        &self,
        id: &str,
        price: &stockbridge_domain::PriceId,
        product: &ProductId,
    ) {
        lock(&self.catalog)
            .links
            .push(stockbridge_domain::StripeLink {
                id: PaymentLinkId::parse(id).expect("valid id"),
                active: true,
                prices: vec![price.clone()],
                products: vec![product.clone()],
                store_id: None,
                product_id: None,
            });
    }

    /// Adds a product with one price as an existing Stripe account has them.
    pub fn add_stripe_product(
        &self,
        id: &str,
        name: &str,
        amount: u64,
    ) -> stockbridge_domain::PriceId {
        let mut c = lock(&self.catalog);
        let price = stockbridge_domain::PriceId::parse(format!("price_{}", c.prices.len() + 1))
            .expect("valid id");
        let product = ProductId::parse(id).expect("valid id");
        c.prices.push(stockbridge_domain::StripePrice {
            id: price.clone(),
            product: product.clone(),
            amount: Some(amount),
            currency: "usd".into(),
            active: true,
        });
        c.products.insert(
            product.clone(),
            stockbridge_domain::StripeProduct {
                id: product,
                name: name.to_owned(),
                description: None,
                images: vec![],
                active: true,
                metadata: BTreeMap::new(),
                updated: 1,
                default_price: Some(price.clone()),
            },
        );
        price
    }

    /// Edits a product as someone in the Dashboard would.
    pub fn edit_product(
        &self,
        id: &ProductId,
        edit: impl FnOnce(&mut stockbridge_domain::StripeProduct),
    ) {
        if let Some(p) = lock(&self.catalog).products.get_mut(id) {
            edit(p);
            p.updated += 1;
        }
    }

    fn call(&self, op: &'static str) {
        lock(&self.calls).push(op);
    }

    fn page_fault(&self) -> Result<(), PaymentsError> {
        let mut left = lock(&self.pages_before_failure);
        match *left {
            Some(0) => {
                *left = None;
                Err(PaymentsError::Unavailable {
                    operation: "list",
                    message: "injected failure".into(),
                })
            }
            Some(n) => {
                *left = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// One Stripe list page (100) of `items`, saying whether more follow.
fn page_of<T>(items: impl Iterator<Item = T>) -> crate::ports::Page<T> {
    let mut items: Vec<T> = items.take(101).collect();
    let has_more = items.len() > 100;
    items.truncate(100);
    crate::ports::Page { items, has_more }
}

fn memory_link(
    c: &MemoryStripeCatalog,
    links: &HashMap<PaymentLinkId, bool>,
    id: &PaymentLinkId,
) -> Option<stockbridge_domain::StripeLink> {
    c.links.iter().find(|l| &l.id == id).map(|l| {
        let mut l = l.clone();
        l.active = links.get(id).copied().unwrap_or(true);
        l
    })
}

impl crate::ports::StripeCatalog for MemoryPayments {
    async fn product(
        &self,
        id: &ProductId,
    ) -> Result<Option<stockbridge_domain::StripeProduct>, PaymentsError> {
        self.call("get_product");
        Ok(lock(&self.catalog).products.get(id).cloned())
    }

    async fn create_product(
        &self,
        id: &ProductId,
        fields: &stockbridge_domain::ProductFields,
        _key: &str,
    ) -> Result<stockbridge_domain::StripeProduct, PaymentsError> {
        self.call("create_product");
        let mut c = lock(&self.catalog);
        if c.products.contains_key(id) {
            return Err(PaymentsError::Rejected {
                operation: "create product",
                message: "Product already exists.".into(),
            });
        }
        let p = stockbridge_domain::StripeProduct {
            id: id.clone(),
            name: fields.name.clone(),
            description: fields.description.clone(),
            images: fields.images.clone(),
            active: fields.active,
            metadata: fields.metadata.clone(),
            updated: 1,
            default_price: None,
        };
        c.products.insert(id.clone(), p.clone());
        Ok(p)
    }

    async fn update_product(
        &self,
        id: &ProductId,
        fields: &stockbridge_domain::ProductFields,
        default_price: Option<&stockbridge_domain::PriceId>,
        _key: &str,
    ) -> Result<stockbridge_domain::StripeProduct, PaymentsError> {
        self.call("update_product");
        let mut c = lock(&self.catalog);
        let p = c
            .products
            .get_mut(id)
            .ok_or_else(|| PaymentsError::NotFound {
                operation: "update product",
                message: id.to_string(),
            })?;
        p.name = fields.name.clone();
        p.description = fields.description.clone();
        p.images = fields.images.clone();
        p.active = fields.active;
        for (k, v) in &fields.metadata {
            p.metadata.insert(k.clone(), v.clone());
        }
        for k in &fields.metadata_removed {
            p.metadata.remove(k);
        }
        if let Some(d) = default_price {
            p.default_price = Some(d.clone());
        }
        p.updated += 1;
        Ok(p.clone())
    }

    async fn price(
        &self,
        id: &stockbridge_domain::PriceId,
    ) -> Result<Option<stockbridge_domain::StripePrice>, PaymentsError> {
        self.call("get_price");
        Ok(lock(&self.catalog)
            .prices
            .iter()
            .find(|p| &p.id == id)
            .cloned())
    }

    async fn active_prices(
        &self,
        product: &ProductId,
    ) -> Result<Vec<stockbridge_domain::StripePrice>, PaymentsError> {
        self.call("list_prices");
        Ok(lock(&self.catalog)
            .prices
            .iter()
            .filter(|p| &p.product == product && p.active)
            .cloned()
            .collect())
    }

    async fn create_price(
        &self,
        product: &ProductId,
        money: &stockbridge_domain::Money,
        key: &str,
    ) -> Result<stockbridge_domain::StripePrice, PaymentsError> {
        self.call("create_price");
        let mut c = lock(&self.catalog);
        if let Some(id) = c.keys.get(key).cloned() {
            return Ok(c
                .prices
                .iter()
                .find(|p| p.id.as_str() == id)
                .cloned()
                .expect("keyed price"));
        }
        let p = stockbridge_domain::StripePrice {
            id: stockbridge_domain::PriceId::parse(format!("price_{}", c.prices.len() + 1))
                .expect("valid id"),
            product: product.clone(),
            amount: Some(money.amount),
            currency: money.currency.clone(),
            active: true,
        };
        c.keys.insert(key.to_owned(), p.id.to_string());
        c.prices.push(p.clone());
        Ok(p)
    }

    async fn archive_price(&self, id: &stockbridge_domain::PriceId) -> Result<(), PaymentsError> {
        self.call("archive_price");
        if let Some(p) = lock(&self.catalog).prices.iter_mut().find(|p| &p.id == id) {
            p.active = false;
        }
        Ok(())
    }

    async fn link(
        &self,
        id: &PaymentLinkId,
    ) -> Result<Option<stockbridge_domain::StripeLink>, PaymentsError> {
        self.call("get_link");
        Ok(memory_link(&lock(&self.catalog), &lock(&self.links), id))
    }

    async fn create_link(
        &self,
        price: &stockbridge_domain::PriceId,
        store: &StoreId,
        product: &ProductId,
        key: &str,
    ) -> Result<stockbridge_domain::StripeLink, PaymentsError> {
        self.call("create_link");
        let mut c = lock(&self.catalog);
        if let Some(id) = c.keys.get(key).cloned() {
            let id = PaymentLinkId::parse(id).expect("keyed link");
            return Ok(memory_link(&c, &lock(&self.links), &id).expect("keyed link"));
        }
        let l = stockbridge_domain::StripeLink {
            id: PaymentLinkId::parse(format!("plink_{}", c.links.len() + 1)).expect("valid id"),
            active: true,
            prices: vec![price.clone()],
            products: vec![product.clone()],
            store_id: Some(store.clone()),
            product_id: Some(product.clone()),
        };
        c.keys.insert(key.to_owned(), l.id.to_string());
        c.links.push(l.clone());
        Ok(l)
    }

    async fn prices_page(
        &self,
        starting_after: Option<&stockbridge_domain::PriceId>,
    ) -> Result<
        crate::ports::Page<(
            stockbridge_domain::StripePrice,
            stockbridge_domain::StripeProduct,
        )>,
        PaymentsError,
    > {
        self.call("list_prices");
        let c = lock(&self.catalog);
        let start = starting_after
            .and_then(|a| c.prices.iter().position(|p| &p.id == a))
            .map_or(0, |i| i + 1);
        Ok(page_of(
            c.prices[start..]
                .iter()
                .filter(|p| p.active)
                .filter_map(|p| c.products.get(&p.product).map(|pr| (p.clone(), pr.clone()))),
        ))
    }

    async fn products_page(
        &self,
        starting_after: Option<&ProductId>,
    ) -> Result<
        crate::ports::Page<(
            stockbridge_domain::StripeProduct,
            Option<stockbridge_domain::StripePrice>,
        )>,
        PaymentsError,
    > {
        self.call("list_products");
        self.page_fault()?;
        let c = lock(&self.catalog);
        Ok(page_of(
            c.products
                .values()
                .filter(|p| starting_after.is_none_or(|a| p.id > *a))
                .map(|p| {
                    let price = p
                        .default_price
                        .as_ref()
                        .and_then(|d| c.prices.iter().find(|x| &x.id == d).cloned());
                    (p.clone(), price)
                }),
        ))
    }

    async fn links_page(
        &self,
        starting_after: Option<&PaymentLinkId>,
    ) -> Result<crate::ports::Page<stockbridge_domain::StripeLink>, PaymentsError> {
        self.call("list_links");
        self.page_fault()?;
        let c = lock(&self.catalog);
        let links = lock(&self.links);
        let start = starting_after
            .and_then(|a| c.links.iter().position(|l| &l.id == a))
            .map_or(0, |i| i + 1);
        Ok(page_of(
            c.links[start..]
                .iter()
                .filter_map(|l| memory_link(&c, &links, &l.id)),
        ))
    }
}

impl crate::ports::Counters for MemoryStore {
    async fn take(&self, w: &crate::ports::Window, n: u32, cap: u32) -> Result<bool, StoreError> {
        let mut counters = lock(&self.counters);
        let count = counters.entry((w.key.clone(), w.start.0)).or_default();
        if count.saturating_add(n) > cap {
            return Ok(false);
        }
        *count += n;
        Ok(true)
    }

    async fn count(&self, w: &crate::ports::Window) -> Result<u32, StoreError> {
        Ok(lock(&self.counters)
            .get(&(w.key.clone(), w.start.0))
            .copied()
            .unwrap_or(0))
    }

    async fn add(&self, w: &crate::ports::Window, n: u32) -> Result<(), StoreError> {
        *lock(&self.counters)
            .entry((w.key.clone(), w.start.0))
            .or_default() += n;
        Ok(())
    }

    async fn give_back(&self, w: &crate::ports::Window, n: u32) -> Result<(), StoreError> {
        // As the table's conditional update: more than there is changes nothing.
        if let Some(count) = lock(&self.counters)
            .get_mut(&(w.key.clone(), w.start.0))
            .filter(|c| **c >= n)
        {
            *count -= n;
        }
        Ok(())
    }
}

impl crate::parking::ParkingLot for MemoryStore {
    async fn parked(&self) -> Result<Vec<crate::parking::Parked>, StoreError> {
        Ok(lock(&self.parking).values().cloned().collect())
    }

    async fn save_parked(&self, record: &crate::parking::Parked) -> Result<(), StoreError> {
        lock(&self.parking).insert(record.id.clone(), record.clone());
        Ok(())
    }

    async fn remove_parked(&self, id: &str) -> Result<(), StoreError> {
        lock(&self.parking).remove(id);
        Ok(())
    }
}

impl crate::ports::CursorStore for MemoryStore {
    async fn cursor(&self) -> Result<Option<crate::ports::Cursor>, StoreError> {
        crate::ports::CursorStore::cursor(&self.cursor).await
    }

    async fn advance_cursor(
        &self,
        previous: Option<&crate::ports::Cursor>,
        next: &crate::ports::Cursor,
    ) -> Result<(), StoreError> {
        crate::ports::CursorStore::advance_cursor(&self.cursor, previous, next).await
    }
}

impl crate::ports::EventLog for MemoryPayments {
    async fn events_between(
        &self,
        types: &[&str],
        from: i64,
        to: i64,
    ) -> Result<Vec<crate::ports::LoggedEvent>, PaymentsError> {
        crate::ports::EventLog::events_between(&self.event_log, types, from, to).await
    }
}

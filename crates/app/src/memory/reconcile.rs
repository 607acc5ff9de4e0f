//! What the reconciler reads and records, in memory.

use super::*;

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
        let s = lock(&self.state);
        Ok(s.items
            .values()
            .filter(|i| &i.store_id == store_id)
            .map(|i| s.with_shards(i))
            .collect())
    }

    async fn all_items(&self) -> Result<Vec<CatalogItem>, StoreError> {
        let s = lock(&self.state);
        Ok(s.items.values().map(|i| s.with_shards(i)).collect())
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

    async fn link_state(
        &self,
        link: &PaymentLinkId,
    ) -> Result<Option<stockbridge_domain::link_guard::LinkSeen>, PaymentsError> {
        Ok(Some(stockbridge_domain::link_guard::LinkSeen {
            active: MemoryPayments::link_active(self, link),
            limit: self.link_limit(link),
        }))
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

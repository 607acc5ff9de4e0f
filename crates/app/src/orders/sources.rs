//! Where an order's store, lines and items come from: the session's metadata or its Payment
//! Link's store; the link's terms (no Stripe call) or the session's line items; the catalog
//! items it names, as they are now.

use super::*;

impl<Store: InventoryStore, Publisher: StockPublisher, Stripe: Payments, Time: Clock>
    Services<Store, Publisher, Stripe, Time>
{
    /// The store a session's stock comes from: its `metadata.store_id`; else the store its
    /// Payment Link was attached to (a link from `backfill` or `catalog import` carries no
    /// store metadata); else `DEFAULT_STORE_ID`.
    pub(super) async fn store_of(
        &self,
        session: &crate::decode::CheckoutSession,
    ) -> Result<StoreId, HandleError> {
        if let Some(s) = &session.store_id {
            return Ok(s.clone());
        }
        if let Some(link) = &session.payment_link
            && let Some(s) =
                self.store
                    .link_store(link)
                    .await
                    .map_err(|source| HandleError::Store {
                        order_id: session.id.clone(),
                        source,
                    })?
        {
            return Ok(s);
        }
        Ok(self.config.default_store.clone())
    }

    /// Decides with fresh state and commits, deciding again on a conflict (up to
    /// `max_attempts`). `None` from `decide`: nothing to do.
    pub(crate) async fn decide_and_commit<F, Fut>(
        &self,
        order_id: &OrderId,
        mut decide: F,
    ) -> Result<Option<Decision>, HandleError>
    where
        F: FnMut(stockbridge_domain::Timestamp) -> Fut,
        Fut: std::future::Future<Output = Result<Option<Decision>, HandleError>>,
    {
        let mut attempt = 0;
        loop {
            let Some(decision) = decide(self.clock.now()).await? else {
                return Ok(None);
            };
            if decision.write.is_empty() {
                return Ok(Some(decision));
            }
            let committed = match commit_of(&decision) {
                Commit::Take(take) => self.take_and_record(&take, decision).await,
                Commit::Record(take) => self
                    .store
                    .record_take(&take, &decision.write)
                    .await
                    .map(|()| decision),
                Commit::Transaction => self.store.commit(&decision.write).await.map(|()| decision),
            };
            match committed {
                Ok(decision) => {
                    if let Some(hook) = &self.after_commit {
                        hook();
                    }
                    return Ok(Some(decision));
                }
                Err(StoreError::Conflict) if attempt + 1 < self.config.max_attempts => {
                    attempt += 1;
                    debug!(order_id = %order_id, attempt, "conflict: deciding again");
                    backoff(attempt).await;
                }
                Err(StoreError::Conflict) => {
                    return Err(HandleError::Contention {
                        order_id: order_id.clone(),
                        attempts: attempt + 1,
                    });
                }
                Err(source) => {
                    return Err(HandleError::Store {
                        order_id: order_id.clone(),
                        source,
                    });
                }
            }
        }
    }

    /// Runs a committed decision's effects.
    pub(crate) async fn run_decision_effects(
        &self,
        order_id: &OrderId,
        decision: &Decision,
    ) -> Result<(), HandleError> {
        run_effects(
            (&self.store, &self.publisher, &self.payments),
            &*self.events,
            &decision.effects,
            self.clock.now(),
        )
        .await
        .map_err(|source| HandleError::Effect {
            order_id: order_id.clone(),
            source,
        })
    }

    /// The order's one line from the session's own amounts, for a Payment Link stockbridge
    /// made (`stockbridge_domain::link`): no Stripe call. `None` (list the line items) for any
    /// other link, any mismatch, or when the link's terms cannot be read.
    pub(super) async fn lines_from_link(
        &self,
        session: &crate::decode::CheckoutSession,
    ) -> Option<Listed> {
        let link = session.payment_link.as_ref()?;
        let terms = match self.store.link_terms(link).await {
            Ok(terms) => terms?,
            Err(e) => {
                warn!(link = %link, error = %e, "a link's terms could not be read: listing the session's line items");
                return None;
            }
        };
        let line = terms.line_for(session.currency.as_deref(), session.amount_subtotal);
        if line.is_none() {
            info!(link = %link, session = %session.id, subtotal = ?session.amount_subtotal, currency = ?session.currency, "the session's amounts do not match its link's price: listing its line items");
        }
        // One line: a short order is refunded in full, so no per-line amount is needed.
        Some((vec![line?], Amounts::new()))
    }

    pub(super) async fn lines(&self, order_id: &OrderId) -> Result<Listed, HandleError> {
        let raw =
            self.payments
                .line_items(order_id)
                .await
                .map_err(|source| HandleError::Payments {
                    order_id: order_id.clone(),
                    source,
                })?;
        let mut lines = Vec::with_capacity(raw.len());
        // Per product; a product with a line of unknown amount has none (no partial refund of it).
        let mut amounts = Amounts::new();
        let mut unknown = Vec::new();
        for (index, l) in raw.into_iter().enumerate() {
            match l.amount_total {
                Some(a) => *amounts.entry(l.product_id.clone()).or_default() += a,
                None => unknown.push(l.product_id.clone()),
            }
            let quantity = Quantity::new(l.quantity).map_err(|e| HandleError::BadLineItem {
                order_id: order_id.clone(),
                index,
                message: format!("quantity: {e}"),
            })?;
            lines.push(OrderLine {
                product_id: l.product_id,
                quantity,
            });
        }
        for p in unknown {
            amounts.remove(&p);
        }
        let lines = merge_lines(lines).map_err(|e| HandleError::BadLineItem {
            order_id: order_id.clone(),
            index: 0,
            message: e.to_string(),
        })?;
        Ok((lines, amounts))
    }

    pub(super) async fn items_of(&self, order: &OrderRecord) -> Result<Items, StoreError> {
        let products: Vec<ProductId> = order.products().cloned().collect();
        if products.is_empty() {
            return Ok(Items::new());
        }
        // Its outcome writes the items (held units sold or returned): spread ones collected.
        let load = || {
            crate::shards::load_collected(
                &self.store,
                &order.order_id,
                &order.store_id,
                &products,
                self.clock.now(),
            )
        };
        let items = load().await?.1;
        if self.give_back_duplicates(&order.order_id, &items).await? {
            return Ok(load().await?.1); // as it is now
        }
        Ok(items)
    }
}

//! A `completed` (or an overtaking `async_payment_succeeded`) Checkout Session event decided
//! as a new order: its lines listed once, the order and items loaded, and, for a spread
//! product, the take from a shard or the decision on the collected view (`crate::shards`).

use stockbridge_domain::{
    CheckoutFacts, Decision, Items, OrderRecord, PaymentState, ProductId, StoreId, Timestamp,
    already_applied, decide_async_success, decide_checkout, decide_payment_succeeded,
};

use super::*;
use crate::shards::{ShardSale, as_collected, collect, writes_spread};

/// Rounds of reading a spread product again (collected or spread anew meanwhile) before an
/// order gives up for now (the Lambda retries it).
const SPREAD_ROUNDS: u32 = 8;

impl<Store: InventoryStore, Publisher: StockPublisher, Stripe: Payments, Time: Clock>
    Services<Store, Publisher, Stripe, Time>
{
    /// Lists the session's lines (once per event, kept across conflict retries), loads the
    /// order and items, and decides.
    pub(super) async fn decide_new(
        &self,
        event: &CheckoutEvent,
        store_id: &StoreId,
        payment: PaymentState,
        lines: &mut Option<Listed>,
        now: Timestamp,
    ) -> Result<Decision, HandleError> {
        let order_id = &event.session.id;
        if lines.is_none() {
            *lines = self.lines_from_link(&event.session).await;
        }
        if lines.is_none() {
            match self.lines(order_id).await {
                Ok(l) => *lines = Some(l),
                Err(e) => return self.decide_without_lines(event, e, now).await,
            }
        }
        let listed = lines.clone().unwrap_or_default();
        self.decide_loaded(event, store_id, payment, listed, now)
            .await
    }

    /// Stripe failing must not block a redelivery of an order already applied (it needs no
    /// line items): if the order exists, decide from the record; otherwise `listing` fails.
    async fn decide_without_lines(
        &self,
        event: &CheckoutEvent,
        listing: HandleError,
        now: Timestamp,
    ) -> Result<Decision, HandleError> {
        let order_id = &event.session.id;
        let store_err = |source| HandleError::Store {
            order_id: order_id.clone(),
            source,
        };
        let Some(order) = self.store.load_order(order_id).await.map_err(store_err)? else {
            return Err(listing);
        };
        let items = self.items_of(&order).await.map_err(store_err)?;
        Ok(match event.kind {
            CheckoutKind::AsyncPaymentSucceeded => {
                decide_payment_succeeded(&order, &event.event_id, &items, now)
            }
            _ => already_applied(&order, &items),
        })
    }

    /// The order and its items, duplicates of this order's takes given back first (read again
    /// if one was: the effects publish the level as it is now).
    async fn load_for(
        &self,
        order_id: &stockbridge_domain::OrderId,
        store_id: &StoreId,
        products: &[ProductId],
    ) -> Result<(Option<OrderRecord>, Items), StoreError> {
        let (existing, items) = self.store.load(order_id, store_id, products).await?;
        if existing.is_some()
            && (self.give_back_duplicates(order_id, &items).await?
                | self.give_back_from_home(order_id, &items).await?)
        {
            return self.store.load(order_id, store_id, products).await;
        }
        Ok((existing, items))
    }

    /// Decides the order on its listed lines; a spread product's order reads again while it
    /// was collected or spread anew under it.
    async fn decide_loaded(
        &self,
        event: &CheckoutEvent,
        store_id: &StoreId,
        payment: PaymentState,
        (lines, amounts): Listed,
        now: Timestamp,
    ) -> Result<Decision, HandleError> {
        let order_id = &event.session.id;
        let products: Vec<ProductId> = lines.iter().map(|l| l.product_id.clone()).collect();
        let store_err = |source| HandleError::Store {
            order_id: order_id.clone(),
            source,
        };
        for round in 0..=SPREAD_ROUNDS {
            let (existing, items) = self
                .load_for(order_id, store_id, &products)
                .await
                .map_err(store_err)?;
            let facts = CheckoutFacts {
                order_id: order_id.clone(),
                store_id: existing
                    .as_ref()
                    .map_or_else(|| store_id.clone(), |o| o.store_id.clone()),
                lines: lines.clone(),
                payment,
                payment_intent: event.session.payment_intent.clone(),
                payment_link: event.session.payment_link.clone(),
                event_id: event.event_id.clone(),
                paid_at: event.paid_at,
                amounts: amounts.clone(),
            };
            let decide = |items: &Items| match event.kind {
                CheckoutKind::AsyncPaymentSucceeded => {
                    decide_async_success(existing.as_ref(), &facts, items, now)
                }
                _ => decide_checkout(existing.as_ref(), &facts, items, now),
            };
            if items.values().all(|i| i.spread.is_none()) {
                return Ok(decide(&items));
            }
            if round == SPREAD_ROUNDS {
                break;
            }
            let decided = self
                .decide_spread(
                    event.kind,
                    (store_id, existing.as_ref()),
                    &facts,
                    &items,
                    decide,
                    now,
                )
                .await
                .map_err(store_err)?;
            if let Some(decision) = decided {
                return Ok(decision);
            }
        }
        Err(HandleError::Contention {
            order_id: order_id.clone(),
            attempts: SPREAD_ROUNDS,
        })
    }

    /// An order with a spread product (`crate::shards`): a new simple order takes from a
    /// shard; any other decision is made on the collected view and collects what it writes.
    /// `None`: read again and decide again.
    async fn decide_spread(
        &self,
        kind: CheckoutKind,
        (store_id, existing): (&StoreId, Option<&OrderRecord>),
        facts: &CheckoutFacts,
        items: &Items,
        decide: impl Fn(&Items) -> Decision,
        now: Timestamp,
    ) -> Result<Option<Decision>, StoreError> {
        let sale = match kind {
            CheckoutKind::Completed => {
                match self.sell_from_shards(existing, facts, items, now).await {
                    // Recorded by another delivery meanwhile, or a collect that kept
                    // changing: read again and decide again.
                    Err(StoreError::Conflict) => ShardSale::Again,
                    other => other?,
                }
            }
            _ => ShardSale::NotTake,
        };
        match sale {
            ShardSale::Sold(decision) => Ok(Some(*decision)),
            ShardSale::Again => Ok(None),
            ShardSale::NotTake => {
                let decision = decide(&as_collected(&self.store, items).await?);
                let spread = writes_spread(&decision, items);
                if spread.is_empty() {
                    return Ok(Some(decision));
                }
                for product in &spread {
                    collect(&self.store, store_id, product, now).await?;
                }
                Ok(None)
            }
        }
    }
}

//! A refund or a closed dispute (`charge.refunded`, `charge.dispute.closed`): find the order
//! the payment belongs to, record it there, and return the units when the store's returns
//! policy says so (`stockbridge_domain::after_sale`). The order is found through Stripe (a
//! hold's PaymentIntent names it; a Checkout Session is listed by its PaymentIntent): at most
//! three reads per event, and refunds are rare.
//!
//! A payment with no recorded order is history (paid before stockbridge's start), not
//! stockbridge's products, or an order whose record expired: nothing is done. Only while its
//! payment is under [`RECORDING_WINDOW_SECS`] old may the order's own checkout event still be
//! on its way (deliveries are not ordered): the event then fails and is delivered again.

use stockbridge_domain::after_sale::decide_after_sale;

use super::*;
use crate::decode::AfterSaleEvent;

/// How long after a payment its order may still be unrecorded because its checkout event is
/// late (Lambda's own retries of a failed delivery take up to a few minutes).
pub const RECORDING_WINDOW_SECS: i64 = 3600;

impl<Store: InventoryStore, Publisher: StockPublisher, Stripe: Payments, Time: Clock>
    Services<Store, Publisher, Stripe, Time>
{
    /// Records a refund or a closed dispute on its order (`None`: the payment is no order of
    /// stockbridge's).
    pub(super) async fn apply_after_sale(
        &self,
        event: &AfterSaleEvent,
    ) -> Result<Option<(OrderId, Outcome)>, HandleError> {
        let charge = &event.charge;
        let found = self
            .payments
            .order_of_payment(event.payment_intent.as_ref(), charge)
            .await
            .map_err(|source| HandleError::Payments {
                order_id: placeholder(charge.as_str()),
                source,
            })?;
        let Some(order_id) = found else {
            info!(stripe_event_id = %event.facts.event_id, charge = %charge, "refund or dispute of a payment that is no order of stockbridge's (not a Checkout Session or checkout hold): nothing to record");
            return Ok(None);
        };
        let store_err = |source| HandleError::Store {
            order_id: order_id.clone(),
            source,
        };
        let Some(first) = self.store.load_order(&order_id).await.map_err(store_err)? else {
            return self.unrecorded(event, order_id).map(Some);
        };
        let policy = self
            .store
            .returns_policy(&first.store_id)
            .await
            .map_err(store_err)?;
        let order_ref = &order_id;
        // An order's store and lines never change once recorded: only its state is read again.
        let store_id = &first.store_id;
        let products: &Vec<_> = &first.products().cloned().collect();
        let decision = self
            .decide_and_commit(&order_id, |now| async move {
                let (order, raw) = self
                    .store
                    .load(order_ref, store_id, products)
                    .await
                    .map_err(store_err)?;
                let order = order.ok_or_else(|| {
                    store_err(crate::ports::StoreError::NotFound(order_ref.to_string()))
                })?;
                // A spread product is seen whole but collected only when units go back: a
                // refund that only records never takes a hot product off its shards.
                let view = crate::shards::as_collected(&self.store, &raw)
                    .await
                    .map_err(store_err)?;
                let decision = decide_after_sale(&order, &event.facts, policy, &view, now);
                if crate::shards::writes_spread(&decision, &raw).is_empty() {
                    return Ok(Some(decision));
                }
                let items = self.items_of(&order).await.map_err(store_err)?;
                Ok(Some(decide_after_sale(
                    &order,
                    &event.facts,
                    policy,
                    &items,
                    now,
                )))
            })
            .await?
            .expect("the after-sale rule always decides");
        match &decision.outcome {
            Outcome::Returned(cause) => {
                info!(stripe_event_id = %event.facts.event_id, order_id = %order_id, ?cause, "refund or lost dispute recorded: the order's units are back in stock (the store's returns policy)")
            }
            Outcome::AfterSaleRecorded => {
                info!(stripe_event_id = %event.facts.event_id, order_id = %order_id, reversal = ?event.facts.reversal, "refund or dispute recorded on the order; no units moved")
            }
            _ => {
                debug!(stripe_event_id = %event.facts.event_id, order_id = %order_id, "refund or dispute already recorded")
            }
        }
        self.run_decision_effects(&order_id, &decision).await?;
        Ok(Some((order_id, decision.outcome)))
    }

    /// The payment is an order stockbridge has no record of.
    fn unrecorded(
        &self,
        event: &AfterSaleEvent,
        order_id: OrderId,
    ) -> Result<(OrderId, Outcome), HandleError> {
        let now = self.clock.now().0.div_euclid(1000);
        let recent = event
            .paid
            .is_some_and(|paid| now - paid < RECORDING_WINDOW_SECS);
        if recent {
            warn!(stripe_event_id = %event.facts.event_id, order_id = %order_id, "refund of a payment whose order is not recorded yet: its checkout event may be on its way; retried");
            return Err(HandleError::NotRecordedYet { order_id });
        }
        info!(stripe_event_id = %event.facts.event_id, order_id = %order_id, "refund or dispute of an order stockbridge has no record of (paid before its start, or its record expired): nothing to record");
        Ok((order_id, Outcome::NoOrder))
    }
}

/// An order id standing for a charge in an error (ids are validated; a charge id is one).
fn placeholder(charge: &str) -> OrderId {
    OrderId::parse(charge).unwrap_or_else(|_| OrderId::parse("unknown").expect("a valid id"))
}

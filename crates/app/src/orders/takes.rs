//! The hot path's take in the inventory use case (`stockbridge_domain::take`): carrying a
//! decision out as a take and its record, and giving back a take that turned out to be a
//! duplicate.

use stockbridge_domain::take::{StockTake, undo, with_take};
use stockbridge_domain::{Decision, Items, OrderId, ProductId, StoreId};
use tracing::warn;

use crate::orders::Services;
use crate::ports::{Clock, InventoryStore, Payments, StockPublisher, StoreError};
use crate::retry::backoff;

impl<Store: InventoryStore, Publisher: StockPublisher, Stripe: Payments, Time: Clock>
    Services<Store, Publisher, Stripe, Time>
{
    /// Carries out a decision as its take, then records it: no version condition, so
    /// concurrent orders for one product do not refuse each other. A take refused by its
    /// condition is a conflict: the order is decided again from fresh state. A record refused
    /// because the order was recorded (or held) since this delivery read it makes the take a
    /// duplicate: it is given back first.
    pub(crate) async fn take_and_record(
        &self,
        take: &StockTake,
        decision: Decision,
    ) -> Result<Decision, StoreError> {
        let Some(mark) = self.store.take_stock(take).await? else {
            return Err(StoreError::Conflict);
        };
        if let Some(hook) = &self.after_take {
            hook();
        }
        let decision = with_take(decision, mark);
        match self.store.record_take(take, &decision.write).await {
            Err(StoreError::Conflict) => {
                self.give_back_take(&take.order_id, &take.store_id, &take.product_id, None)
                    .await?;
                Err(StoreError::Conflict)
            }
            other => other.map(|()| decision),
        }
    }

    /// Gives back every take of `order_id` found on `items` (as loaded for it) that its record
    /// does not name: the duplicates a delivery made and could not give back before it stopped.
    /// True when one was given back (read the items again: a give-back changes the level); a
    /// mark that is the order's own sale, not removed yet, changes nothing.
    pub(crate) async fn give_back_duplicates(
        &self,
        order_id: &OrderId,
        items: &Items,
    ) -> Result<bool, StoreError> {
        let mut given_back = false;
        for item in items.values().filter(|i| i.unrecorded_take.is_some()) {
            given_back |= self
                .give_back_take(order_id, &item.store_id, &item.product_id, None)
                .await?;
        }
        Ok(given_back)
    }

    /// Gives back `order_id`'s take on one item (`on: None`) or on one shard of it, unless it is
    /// the order's sale (the ledger entry at its version is the order's) or gone already;
    /// deciding again on a conflict. The units go back to the item, spread or not. True when it
    /// gave the take back.
    pub(crate) async fn give_back_take(
        &self,
        order_id: &OrderId,
        store_id: &StoreId,
        product_id: &ProductId,
        on: Option<u16>,
    ) -> Result<bool, StoreError> {
        let mut attempt = 0;
        loop {
            let (_, items) = self
                .store
                .load(order_id, store_id, std::slice::from_ref(product_id))
                .await?;
            let Some(item) = items.get(product_id) else {
                return Ok(false);
            };
            let mark = match on {
                None => item.unrecorded_take,
                Some(shard) => {
                    self.store
                        .shard_mark(store_id, product_id, shard, order_id)
                        .await?
                }
            };
            let Some(mark) = mark else {
                return Ok(false);
            };
            let entry = self
                .store
                .ledger_entry(store_id, product_id, mark.shard, mark.version)
                .await?;
            if entry.is_some_and(|e| e.cause.order_id.as_ref() == Some(order_id)) {
                return Ok(false); // the sale itself: its mark goes with a later take
            }
            let mut decision = undo(item, order_id, mark, self.clock.now());
            if item.spread.is_some() {
                // The item's units alone are not a spread product's level: the broadcaster's.
                decision.effects.publish.clear();
            }
            match self
                .store
                .undo_take(order_id, mark, on, &decision.write)
                .await
            {
                Ok(()) => {
                    warn!(order_id = %order_id, product = %product_id, units = mark.quantity, "a duplicate take was given back");
                    // The level is published again by the order's own effects; links a give-back
                    // brought back into stock are switched on by the reconciler's link check.
                    if let Err(e) = self.run_decision_effects(order_id, &decision).await {
                        warn!(order_id = %order_id, error = %e, "after giving back a duplicate take");
                    }
                    return Ok(true);
                }
                Err(StoreError::Conflict) if attempt + 1 < self.config.max_attempts => {
                    attempt += 1;
                    backoff(attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

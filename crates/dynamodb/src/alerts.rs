//! [`LowStockStore`]: an item's low-stock threshold (`low_stock`) and state (`low_stock_low`,
//! `low_stock_crossings`, `low_stock_pending`) as attributes of its `ITEM` record. They are
//! written by their own UpdateItem calls, never by a stock change (those update the stock
//! attributes only, so they never overwrite these); each step is conditional on the state its
//! reader saw. Such a write can still collide with an order's transaction on the same item
//! (TransactionConflict): the order retries as after any conflict, and a failed step stays for
//! the broadcaster's next read. At most three writes per crossing, none per order.

use stockbridge_app::ports::{InventoryStore, LowStockStore};
use stockbridge_domain::low_stock::LowStock;

use super::*;
use crate::codec::{item_pk, key, n};

impl LowStockStore for DynamoStore {
    async fn set_low_stock(
        &self,
        store: &StoreId,
        product: &ProductId,
        threshold: Option<u64>,
    ) -> Result<bool, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(item_pk(store, product), "ITEM")));
        let update = match threshold {
            // A new threshold arms it; the same one again (a re-import) leaves its state.
            Some(t) => update
                .update_expression("SET low_stock = :t, low_stock_low = :no")
                .condition_expression(
                    "attribute_exists(pk) AND (attribute_not_exists(low_stock) OR low_stock <> :t)",
                )
                .expression_attribute_values(":t", n(t))
                .expression_attribute_values(":no", AttributeValue::Bool(false)),
            None => update
                .update_expression("REMOVE low_stock, low_stock_low")
                .condition_expression("attribute_exists(pk)"),
        };
        match update.send().await {
            Ok(_) => Ok(true),
            // No such item, or already this threshold: which one, the item says.
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                Ok(self.item(store, product).await?.is_some())
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn record_low_stock(
        &self,
        store: &StoreId,
        product: &ProductId,
        from: &LowStock,
        to: &LowStock,
    ) -> Result<bool, StoreError> {
        let mut condition = String::from("low_stock = :thr AND low_stock_low = :was_low");
        condition.push_str(if from.crossings == 0 {
            " AND (attribute_not_exists(low_stock_crossings) OR low_stock_crossings = :was_n)"
        } else {
            " AND low_stock_crossings = :was_n"
        });
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(item_pk(store, product), "ITEM")))
            .expression_attribute_values(":thr", n(from.threshold))
            .expression_attribute_values(":was_low", AttributeValue::Bool(from.low))
            .expression_attribute_values(":was_n", n(from.crossings))
            .expression_attribute_values(":low", AttributeValue::Bool(to.low))
            .expression_attribute_values(":n", n(to.crossings));
        match from.pending {
            Some(p) => {
                condition.push_str(" AND low_stock_pending = :was_p");
                update = update.expression_attribute_values(":was_p", n(p));
            }
            None => condition.push_str(" AND attribute_not_exists(low_stock_pending)"),
        }
        let set = "SET low_stock_low = :low, low_stock_crossings = :n";
        update = match to.pending {
            Some(p) => update
                .update_expression(format!("{set}, low_stock_pending = :p"))
                .expression_attribute_values(":p", n(p)),
            None => update.update_expression(format!("{set} REMOVE low_stock_pending")),
        };
        match update.condition_expression(condition).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(sdk_error(e)),
        }
    }
}

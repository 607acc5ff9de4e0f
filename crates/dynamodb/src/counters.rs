//! [`Counters`] in the table: one record per key and window (`COUNTER#{key}` / `WINDOW#{start}`),
//! counted with conditional `UpdateItem`s, deleted by the table's TTL (`expires_at`, epoch
//! seconds) an hour after its window ends.

use stockbridge_app::ports::{Counters, StoreError, Window};

use crate::{DynamoStore, key, n as num, s, sdk_error};

fn window_key(w: &Window) -> crate::Attrs {
    key(
        format!("COUNTER#{}", w.key),
        &format!("WINDOW#{:020}", w.start.0),
    )
}

/// When DynamoDB may delete the window's record: an hour after it ends, in epoch seconds.
fn expires_at(w: &Window) -> i64 {
    w.start.0 / 1000 + i64::from(w.seconds) + 3600
}

impl Counters for DynamoStore {
    async fn take(&self, w: &Window, n: u32, cap: u32) -> Result<bool, StoreError> {
        // Conditions cannot add: the count may be at most `cap - n` before adding `n`.
        let Some(room) = cap.checked_sub(n) else {
            return Ok(false);
        };
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(window_key(w)))
            .update_expression("SET kind = :kind, expires_at = :ttl ADD #n :one")
            .condition_expression("attribute_not_exists(#n) OR #n <= :room")
            .expression_attribute_names("#n", "n")
            .expression_attribute_values(":kind", s("counter"))
            .expression_attribute_values(":ttl", num(expires_at(w)))
            .expression_attribute_values(":one", num(n))
            .expression_attribute_values(":room", num(room))
            .send()
            .await;
        match r.map_err(sdk_error) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn count(&self, w: &Window) -> Result<u32, StoreError> {
        match self.get_consistent(window_key(w)).await? {
            None => Ok(0),
            Some(a) => crate::get_n(&a, "n", &w.key),
        }
    }

    async fn add(&self, w: &Window, n: u32) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(window_key(w)))
            .update_expression("SET kind = :kind, expires_at = :ttl ADD #n :one")
            .expression_attribute_names("#n", "n")
            .expression_attribute_values(":kind", s("counter"))
            .expression_attribute_values(":ttl", num(expires_at(w)))
            .expression_attribute_values(":one", num(n))
            .send()
            .await
            .map_err(sdk_error)
            .map(|_| ())
    }

    async fn give_back(&self, w: &Window, n: u32) -> Result<(), StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(window_key(w)))
            .update_expression("ADD #n :minus")
            .condition_expression("#n >= :n")
            .expression_attribute_names("#n", "n")
            .expression_attribute_values(":minus", num(-i64::from(n)))
            .expression_attribute_values(":n", num(n))
            .send()
            .await;
        match r.map_err(sdk_error) {
            // Nothing to give back (already 0, or the window expired).
            Ok(_) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

//! In-memory fakes of what thin events and webhooks need: Stripe's objects and v2 events read
//! back, and the catalog sync's queue.

use serde_json::Value;

use super::*;
use crate::ports::{CatalogQueue, ObjectKind, StripeObjects};

impl MemoryPayments {
    /// Puts an object where [`StripeObjects::object`] reads it (by its id).
    pub fn add_object(&self, id: &str, object: Value) {
        lock(&self.objects).insert(id.to_owned(), object);
    }

    /// Puts a v2 event where [`StripeObjects::event`] reads it.
    pub fn add_v2_event(&self, id: &str, event: Value) {
        lock(&self.v2_events).insert(id.to_owned(), event);
    }
}

impl StripeObjects for MemoryPayments {
    async fn event(&self, id: &str) -> Result<Value, PaymentsError> {
        lock(&self.calls).push("v2_event");
        lock(&self.v2_events)
            .get(id)
            .cloned()
            .ok_or_else(|| PaymentsError::Rejected {
                operation: "retrieve event",
                message: format!("No such event: {id}"),
            })
    }

    async fn object(&self, kind: ObjectKind, id: &str) -> Result<Value, PaymentsError> {
        lock(&self.calls).push(match kind {
            ObjectKind::CheckoutSession => "retrieve_session",
            ObjectKind::PaymentIntent => "retrieve_payment_intent",
            ObjectKind::Charge => "retrieve_charge",
            ObjectKind::Dispute => "retrieve_dispute",
        });
        if self
            .fail_objects
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(PaymentsError::Unavailable {
                operation: "retrieve object",
                message: "injected outage".into(),
            });
        }
        lock(&self.objects)
            .get(id)
            .cloned()
            .ok_or_else(|| PaymentsError::Rejected {
                operation: "retrieve object",
                message: format!("No such object: {id}"),
            })
    }
}

/// An in-memory catalog-sync queue: every body sent, in order.
#[derive(Debug, Default, Clone)]
pub struct MemoryCatalogQueue(std::sync::Arc<Mutex<Vec<String>>>);

impl MemoryCatalogQueue {
    /// What was sent, in order.
    pub fn sent(&self) -> Vec<String> {
        lock(&self.0).clone()
    }
}

impl CatalogQueue for MemoryCatalogQueue {
    async fn send(&self, body: &str) -> Result<(), StoreError> {
        lock(&self.0).push(body.to_owned());
        Ok(())
    }
}

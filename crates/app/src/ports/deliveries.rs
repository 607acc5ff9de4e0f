//! What the other ways Stripe delivers need: reading a thin event's event and object back from
//! Stripe, and handing a catalog event to the catalog sync's queue.

use super::*;

/// A Stripe object a thin event can name and stockbridge reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// `checkout.session` (`GET /v1/checkout/sessions/{id}`).
    CheckoutSession,
    /// `payment_intent` (`GET /v1/payment_intents/{id}`).
    PaymentIntent,
    /// `charge` (`GET /v1/charges/{id}`): a refund.
    Charge,
    /// `dispute` (`GET /v1/disputes/{id}`).
    Dispute,
}

/// Reads what a thin event only names. Each call is one Stripe request against the account's
/// rate budget: the price of thin events.
pub trait StripeObjects: Send + Sync {
    /// A v2 event with its fetched attributes (`GET /v2/core/events/{id}`).
    fn event(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<serde_json::Value, PaymentsError>> + Send;

    /// An object as Stripe has it now.
    fn object(
        &self,
        kind: ObjectKind,
        id: &str,
    ) -> impl Future<Output = Result<serde_json::Value, PaymentsError>> + Send;
}

/// The catalog sync's queue, for catalog events that arrive by webhook (EventBridge puts them
/// there through a rule).
pub trait CatalogQueue: Send + Sync {
    /// Sends one message body (a Stripe event, snapshot or thin).
    fn send(&self, body: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

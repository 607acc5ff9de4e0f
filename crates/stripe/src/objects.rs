//! What thin events need from Stripe ([`StripeObjects`]): a v2 event with its fetched
//! attributes, through this adapter's own transport (async-stripe has no typed v2 requests: an
//! exception to the typed-client rule, kept to this read), and a Checkout Session or
//! PaymentIntent through the typed requests, rendered as the JSON the event decoder reads.

use super::*;
use stockbridge_app::ports::{ObjectKind, StripeObjects};

/// The session's fields the event decoder and the repairs read, as Stripe's JSON names them.
pub(crate) fn session_json(s: &stripe_shared::CheckoutSession) -> serde_json::Value {
    serde_json::json!({
        "id": s.id.as_str(),
        "object": "checkout.session",
        "created": s.created,
        "status": s.status.as_ref().map(|st| st.as_str()),
        "payment_status": s.payment_status.as_str(),
        "payment_intent": s.payment_intent.as_ref().map(|p| match p {
            Expandable::Id(id) => id.as_str().to_owned(),
            Expandable::Object(o) => o.id.as_str().to_owned(),
        }),
        "payment_link": s.payment_link.as_ref().map(|p| match p {
            Expandable::Id(id) => id.as_str().to_owned(),
            Expandable::Object(o) => o.id.as_str().to_owned(),
        }),
        "metadata": s.metadata,
        "livemode": s.livemode,
        "currency": s.currency.as_ref().map(ToString::to_string),
        "amount_subtotal": s.amount_subtotal,
        "amount_total": s.amount_total,
    })
}

/// A v2 id as Stripe makes them (letters, digits, `_`), so it is safe in a path.
fn plain_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl StripeObjects for StripePayments {
    async fn event(&self, id: &str) -> Result<serde_json::Value, PaymentsError> {
        const OP: &str = "read v2 event";
        if !plain_id(id) {
            return Err(PaymentsError::Invalid {
                operation: OP,
                message: format!("{id:?} is not a Stripe event id"),
            });
        }
        let path = format!("v2/core/events/{id}");
        let bytes = self
            .with_retry(OP, || {
                self.client
                    .raw(stripe_client_core::StripeMethod::Get, &path)
            })
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| PaymentsError::Invalid {
            operation: OP,
            message: format!("not JSON: {e}"),
        })
    }

    async fn object(&self, kind: ObjectKind, id: &str) -> Result<serde_json::Value, PaymentsError> {
        match kind {
            ObjectKind::CheckoutSession => {
                let req = RetrieveCheckoutSession::new(id);
                let s = self
                    .with_retry("read checkout session", || req.send(&self.client))
                    .await?;
                Ok(session_json(&s))
            }
            ObjectKind::PaymentIntent => {
                let req = RetrievePaymentIntent::new(id);
                let pi = self
                    .with_retry("read payment intent", || req.send(&self.client))
                    .await?;
                Ok(serde_json::json!({
                    "id": pi.id.as_str(),
                    "object": "payment_intent",
                    "created": pi.created,
                    "status": pi.status.as_str(),
                    "amount": pi.amount,
                    "currency": pi.currency.to_string(),
                    "metadata": pi.metadata,
                    "livemode": pi.livemode,
                }))
            }
            ObjectKind::Charge => {
                let req = stripe_core::charge::RetrieveCharge::new(id);
                let ch = self
                    .with_retry("read charge", || req.send(&self.client))
                    .await?;
                Ok(serde_json::json!({
                    "id": ch.id.as_str(),
                    "object": "charge",
                    "created": ch.created,
                    "payment_intent": ch.payment_intent.as_ref().map(expandable_id),
                    "amount": ch.amount,
                    "amount_refunded": ch.amount_refunded,
                    "refunded": ch.refunded,
                    "livemode": ch.livemode,
                }))
            }
            ObjectKind::Dispute => {
                let req = stripe_core::dispute::RetrieveDispute::new(id);
                let d = self
                    .with_retry("read dispute", || req.send(&self.client))
                    .await?;
                Ok(serde_json::json!({
                    "id": d.id.as_str(),
                    "object": "dispute",
                    "charge": expandable_id(&d.charge),
                    "payment_intent": d.payment_intent.as_ref().map(expandable_id),
                    "status": d.status.as_str(),
                    "livemode": d.livemode,
                }))
            }
        }
    }
}

/// The id of an expandable field, expanded or not.
fn expandable_id<T>(e: &Expandable<T>) -> String
where
    T: stripe_types::Object,
    T::Id: std::fmt::Display,
{
    e.id().to_string()
}

//! The order a refunded or disputed payment belongs to ([`Payments::order_of_payment`]): a
//! checkout hold's PaymentIntent names it (`metadata.hold_id`); a Checkout Session is listed by
//! its PaymentIntent (`GET /v1/checkout/sessions?payment_intent=`). A dispute of an old charge
//! may not name its PaymentIntent: the charge is read for it.
//!
//! [`Payments::order_of_payment`]: stockbridge_app::ports::Payments::order_of_payment

use stockbridge_app::ports::PaymentsError;
use stockbridge_domain::{ChargeId, OrderId, PaymentIntentId};
use stripe_checkout::checkout_session::ListCheckoutSession;
use stripe_core::charge::RetrieveCharge;
use stripe_core::payment_intent::RetrievePaymentIntent;
use stripe_types::Expandable;

use crate::StripePayments;

impl StripePayments {
    /// [`stockbridge_app::ports::Payments::order_of_payment`].
    pub(crate) async fn find_order_of_payment(
        &self,
        payment_intent: Option<&PaymentIntentId>,
        charge: &ChargeId,
    ) -> Result<Option<OrderId>, PaymentsError> {
        let invalid = |message: String| PaymentsError::Invalid {
            operation: "find the order of a payment",
            message,
        };
        let pi = match payment_intent {
            Some(pi) => pi.as_str().to_owned(),
            None => {
                let read = RetrieveCharge::new(charge.as_str());
                let ch = self
                    .with_retry("read charge", || read.send(&self.client))
                    .await?;
                match ch.payment_intent {
                    Some(Expandable::Id(id)) => id.as_str().to_owned(),
                    Some(Expandable::Object(pi)) => pi.id.as_str().to_owned(),
                    // A charge made without a PaymentIntent: no Checkout Session, no hold.
                    None => return Ok(None),
                }
            }
        };
        let read = RetrievePaymentIntent::new(pi.as_str());
        let intent = self
            .with_retry("read payment intent", || read.send(&self.client))
            .await?;
        if let Some(hold) = intent.metadata.get("hold_id").filter(|h| !h.is_empty()) {
            return OrderId::parse(hold.as_str())
                .map(Some)
                .map_err(|e| invalid(format!("{pi}: metadata.hold_id: {e}")));
        }
        let list = ListCheckoutSession::new()
            .payment_intent(pi.as_str())
            .limit(1);
        let page = self
            .with_retry("list checkout sessions", || list.send(&self.client))
            .await?;
        page.data
            .first()
            .map(|s| OrderId::parse(s.id.as_str()))
            .transpose()
            .map_err(|e| invalid(format!("the session of {pi}: {e}")))
    }
}

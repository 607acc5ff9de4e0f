//! `charge.refunded` and `charge.dispute.closed`: the merchant refunded a payment (in the
//! Dashboard, the API, or stockbridge itself for an oversold order) or a dispute over it
//! closed. Only what the after-sale rule needs is read (`stockbridge_domain::after_sale`):
//! - a Charge: `id`, `payment_intent`, `amount_refunded` (the running total), `refunded`
//!   (whether in full), `created` (when it was paid);
//! - a Dispute: `charge`, `payment_intent`, `status`.

use serde::Deserialize;
use serde_json::Value;
use stockbridge_domain::after_sale::{Reversal, ReversalFacts};
use stockbridge_domain::{ChargeId, PaymentIntentId, StripeEventId};

use super::stripe_event::{IdOrObject, decode_at, id};
use super::{DecodeError, Decoded};

/// `charge.refunded`.
pub const CHARGE_REFUNDED: &str = "charge.refunded";
/// `charge.dispute.closed`.
pub const DISPUTE_CLOSED: &str = "charge.dispute.closed";

/// A refund or a closed dispute, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterSaleEvent {
    /// The event and what it reports.
    pub facts: ReversalFacts,
    /// The payment it is about: its PaymentIntent, when the object names it.
    pub payment_intent: Option<PaymentIntentId>,
    /// The charge.
    pub charge: ChargeId,
    /// When the charge was paid (Unix seconds), when the object is the charge.
    pub paid: Option<i64>,
}

#[derive(Deserialize)]
struct ChargeObject {
    id: String,
    #[serde(default)]
    payment_intent: Option<IdOrObject>,
    amount_refunded: u64,
    refunded: bool,
    #[serde(default)]
    created: Option<i64>,
}

#[derive(Deserialize)]
struct DisputeObject {
    charge: IdOrObject,
    #[serde(default)]
    payment_intent: Option<IdOrObject>,
    status: String,
}

/// Decodes a `charge.refunded` or `charge.dispute.closed` event (`event_type`), `data` being its
/// `data`; `at` names the event in errors.
pub(super) fn decode_after_sale(
    event_id: String,
    event_type: &str,
    data: &Value,
    at: &str,
) -> Result<Decoded, DecodeError> {
    let event_id = id(&format!("{at}.id"), event_id, StripeEventId::parse)?;
    let object = data.get("object").unwrap_or(&Value::Null);
    let field = format!("{at}.data.object");
    let pi = |v: Option<IdOrObject>, f: &str| {
        v.map(|v| id(&format!("{field}.{f}"), v.id(), PaymentIntentId::parse))
            .transpose()
    };
    let event = if event_type == CHARGE_REFUNDED {
        let c: ChargeObject = decode_at(&field, object)?;
        AfterSaleEvent {
            facts: ReversalFacts {
                event_id,
                reversal: Reversal::Refund {
                    amount_refunded: c.amount_refunded,
                    in_full: c.refunded,
                },
            },
            payment_intent: pi(c.payment_intent, "payment_intent")?,
            charge: id(&format!("{field}.id"), c.id, ChargeId::parse)?,
            paid: c.created,
        }
    } else {
        let d: DisputeObject = decode_at(&field, object)?;
        AfterSaleEvent {
            facts: ReversalFacts {
                event_id,
                reversal: Reversal::DisputeClosed { status: d.status },
            },
            payment_intent: pi(d.payment_intent, "payment_intent")?,
            charge: id(&format!("{field}.charge"), d.charge.id(), ChargeId::parse)?,
            paid: None,
        }
    };
    Ok(Decoded::AfterSale(event))
}

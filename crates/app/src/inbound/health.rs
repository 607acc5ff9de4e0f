//! `v2.core.health.event_generation_failure.resolved`: Stripe, rarely, fails to generate an event
//! at all (it reaches no destination and is not in `/v1/events`, so the reconciler's replay
//! cannot find it either), and once resolved says so to webhook endpoints, naming the object in
//! the fetched event's `data.impact` (`event_type`, `related_object`). The object is re-checked
//! through the repair paths that already exist, each bounded as it is there:
//!
//! - a Checkout Session: read now; a complete one is applied as the reconciler applies a paid
//!   session without an order ([`Services::apply_session_without_event`]): exactly once, and
//!   left alone when it opened before stockbridge managed its products (it may be history);
//! - a PaymentIntent: read now and handed to the hold handler as the lost event (an intent
//!   without a stockbridge hold is ignored there);
//! - a product, price or Payment Link: handed to the catalog sync (it makes Stripe match the
//!   catalog, for products stockbridge manages only).
//!
//! Each is recorded in the reconciliation log (`stripe_generated_every_event`), repaired or not.

use serde_json::{Value, json};
use stockbridge_domain::invariants::{Discrepancy, Repair};
use stockbridge_domain::{OrderId, Outcome};
use tracing::warn;

use super::{DeliveryError, object_kind, snapshot_event};
use crate::decode::thin_event::ThinEvent;
use crate::decode::{CHECKOUT_COMPLETED, HANDLED_EVENT_TYPES};
use crate::orders::{Handled, Services};
use crate::ports::{
    CatalogQueue, Clock, InventoryStore, ObjectKind, Payments, ReconciliationLog, StockPublisher,
    StripeObjects,
};

/// What a re-check found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// `checkout.session cs_…`.
    pub object: String,
    /// The event Stripe failed to generate.
    pub event_type: String,
    /// What was done, for people (`applied: Confirmed`, `left alone: …`).
    pub done: String,
    /// Whether something was repaired.
    pub repaired: bool,
}

/// What `data.impact` names.
struct Impact {
    event_type: String,
    id: String,
    kind: String,
}

impl<Store, Publisher, Stripe, Time> Services<Store, Publisher, Stripe, Time>
where
    Store: InventoryStore + ReconciliationLog,
    Publisher: StockPublisher,
    Stripe: Payments + StripeObjects,
    Time: Clock,
{
    /// Re-checks the object of an event Stripe failed to generate, and records it.
    ///
    /// # Errors
    /// [`DeliveryError`]: the event or object could not be read, the repair or the record
    /// failed.
    pub(crate) async fn recover_generation_failure(
        &self,
        thin: &ThinEvent,
        catalog: &impl CatalogQueue,
    ) -> Result<Recovery, DeliveryError> {
        let event =
            self.payments
                .event(&thin.id)
                .await
                .map_err(|source| DeliveryError::Stripe {
                    what: format!("event {}", thin.id),
                    source,
                })?;
        let impact = impact(&event)?;
        let object = format!("{} {}", impact.kind, impact.id);
        let (done, repaired, action) = match (object_kind(&impact.kind), impact.kind.as_str()) {
            (Some(kind), _) => self.recheck_payment(kind, &impact).await?,
            (None, "product" | "price" | "payment_link") => {
                let message = json!({
                    "object": crate::decode::thin_event::THIN_OBJECT,
                    "id": thin.id,
                    "type": format!("v1.{}.updated", impact.kind),
                    "created": thin.created,
                    "livemode": self.config.filter.livemode,
                    "related_object": {"id": impact.id, "type": impact.kind},
                });
                self.to_catalog(&message, catalog).await?;
                let action = match stockbridge_domain::ProductId::parse(&impact.id) {
                    Ok(product) if impact.kind == "product" => Repair::SyncProduct { product },
                    _ => Repair::LeaveAlone,
                };
                ("handed to the catalog sync".to_owned(), true, action)
            }
            (None, other) => (
                format!("left alone: stockbridge keeps nothing about a {other}"),
                false,
                Repair::LeaveAlone,
            ),
        };
        let found = format!(
            "Stripe failed to generate it ({}); re-checked: {done}",
            event
                .pointer("/data/alert_id")
                .and_then(Value::as_str)
                .unwrap_or("no alert id")
        );
        let discrepancy = Discrepancy {
            what: "stripe_generated_every_event",
            subject: object.clone(),
            expected: format!("a {} event", impact.event_type),
            found,
            action,
            cause: Some("v2.core.health.event_generation_failure.resolved"),
        };
        warn!(subject = %object, event_type = %impact.event_type, %done, "Stripe failed to generate an event: re-checked");
        self.store
            .record(self.clock.now(), &discrepancy, repaired)
            .await
            .map_err(DeliveryError::Record)?;
        Ok(Recovery {
            object,
            event_type: impact.event_type,
            done,
            repaired,
        })
    }

    /// A session or intent read now, handed to its handler as the event that was lost.
    async fn recheck_payment(
        &self,
        kind: ObjectKind,
        impact: &Impact,
    ) -> Result<(String, bool, Repair), DeliveryError> {
        let object = self.read_object(kind, &impact.kind, &impact.id).await?;
        let lost = Some(impact.event_type.as_str()).filter(|t| HANDLED_EVENT_TYPES.contains(t));
        let created = object.get("created").and_then(Value::as_i64).unwrap_or(0);
        let livemode = object
            .get("livemode")
            .cloned()
            .unwrap_or(Value::Bool(self.config.filter.livemode));
        let handled = if kind == ObjectKind::CheckoutSession {
            if object.get("status").and_then(Value::as_str) != Some("complete") {
                return Ok((
                    "left alone: the session is not complete".into(),
                    false,
                    Repair::LeaveAlone,
                ));
            }
            // Like the reconciler's repair of a lost session: `created` is when it opened, a
            // lower bound on when it was paid, so history stays history.
            let event = snapshot_event(
                &format!("recovered_{}", impact.id),
                lost.filter(|t| t.starts_with("checkout."))
                    .unwrap_or(CHECKOUT_COMPLETED),
                created,
                livemode,
                object,
            );
            self.apply_session_without_event(&event).await?
        } else {
            let Some(lost) =
                lost.filter(|t| t.starts_with("payment_intent.") || t.starts_with("charge."))
            else {
                return Ok((
                    format!(
                        "left alone: {} is not an event stockbridge handles",
                        impact.event_type
                    ),
                    false,
                    Repair::LeaveAlone,
                ));
            };
            let event = snapshot_event(
                &format!("recovered_{}", impact.id),
                lost,
                created,
                livemode,
                object,
            );
            self.handle_stripe_event(&event).await?
        };
        Ok(describe(handled, &impact.id))
    }
}

/// What a handler's answer means as a re-check.
fn describe(handled: Handled, id: &str) -> (String, bool, Repair) {
    match handled {
        Handled::Applied {
            outcome: Outcome::PaidTimeUnknown,
            ..
        } => (
            "left alone: opened before stockbridge managed its products (it may be history)".into(),
            false,
            Repair::LeaveAlone,
        ),
        Handled::Applied {
            outcome: outcome @ Outcome::AlreadyApplied(_),
            ..
        } => (
            format!("nothing to do: {outcome:?}"),
            false,
            Repair::LeaveAlone,
        ),
        Handled::Applied { outcome, .. } => {
            let action = match OrderId::parse(id) {
                Ok(session) if id.starts_with("cs_") => Repair::ApplySession { session },
                _ => Repair::LeaveAlone,
            };
            (format!("applied: {outcome:?}"), true, action)
        }
        Handled::Refused => ("refused (wrong livemode)".into(), false, Repair::LeaveAlone),
        Handled::Ignored => (
            "nothing to do: no stockbridge order or hold".into(),
            false,
            Repair::LeaveAlone,
        ),
    }
}

/// Reads `data.impact` of a fetched `event_generation_failure.resolved` event.
fn impact(event: &Value) -> Result<Impact, DeliveryError> {
    let text = |path: &str| {
        event
            .pointer(path)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                DeliveryError::malformed(&format!("event{}", path.replace('/', ".")), "missing")
            })
    };
    Ok(Impact {
        event_type: text("/data/impact/event_type")?,
        id: text("/data/impact/related_object/id")?,
        kind: text("/data/impact/related_object/type")?,
    })
}

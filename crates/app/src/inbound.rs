//! Every way Stripe delivers an event, into the same handlers: the `webhook` Lambda's use case
//! ([`Services::deliver`]: a signature-checked webhook body) and the thin events that also reach
//! the `inventory` Lambda through EventBridge ([`Services::handle_envelope`]).
//!
//! - A snapshot event (`"object": "event"`) is what EventBridge delivers in `detail`: an order or
//!   hold event goes to [`Services::handle_stripe_event`], a catalog event to the catalog sync's
//!   queue (EventBridge puts those there through a rule; a webhook has only one URL).
//! - A thin event (`"object": "v2.core.event"`) names its object and carries no snapshot. For
//!   an order or hold event the object is read back from Stripe as it is now and handed to the
//!   same handler, as the event it stands for (same id, same `created`): one Stripe call per
//!   event, against the account's rate budget, which is why snapshot payloads stay the setting
//!   for busy stores. A thin v1 event's fetched event has no more than its notification (no
//!   `data`), so only the object is read. Reading "now" instead of "then": the handlers decide
//!   on the session's and intent's current state anyway, except the payment time of a
//!   `completed` session, which becomes a lower bound (`created`), as for a session found
//!   without an event.
//! - `v2.core.event_destination.ping` is answered as healthy; a thin catalog event goes to the
//!   catalog queue like a snapshot one (the sync reads current state anyway).
//! - `v2.core.health.event_generation_failure.resolved` (only to webhooks): [`health`].

use serde_json::{Value, json};
use tracing::info;

use crate::decode::thin_event::{
    GENERATION_FAILURE_RESOLVED, PING, ThinEvent, decode_thin, is_thin,
};
use crate::decode::{
    CATALOG_EVENT_TYPES, CHECKOUT_COMPLETED, DecodeError, Decoded, HANDLED_EVENT_TYPES, Refusal,
    foreign_source,
};
use crate::orders::{HandleError, Handled, Services};
use crate::ports::{
    CatalogQueue, Clock, InventoryStore, ObjectKind, Parked, ParkedState, ParkingLot, Payments,
    PaymentsError, ReconciliationLog, StockPublisher, StoreError, StripeObjects,
};

pub mod health;

pub use health::Recovery;

/// What became of a delivered event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// An order or hold event, through the inventory's handler.
    Handled(Handled),
    /// A catalog event, handed to the catalog sync's queue.
    ForCatalog,
    /// Stripe testing the destination.
    Ping,
    /// An event Stripe failed to generate, re-checked.
    Recovered(Recovery),
    /// A type stockbridge does not handle.
    Ignored(String),
    /// It can never be handled as it is (malformed, refused by Stripe): parked with its reason
    /// (`stockbridge parked list`), so Stripe stops delivering it.
    Parked(String),
}

/// Why a delivered event could not be handled. The webhook answers 500 for a retryable one
/// (Stripe delivers it again); any other is parked by the caller.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The inventory's handler failed.
    #[error(transparent)]
    Handle(#[from] HandleError),
    /// Reading the event's object or event from Stripe failed.
    #[error("reading {what} from Stripe: {source}")]
    Stripe {
        /// What was read.
        what: String,
        /// The cause.
        #[source]
        source: PaymentsError,
    },
    /// The catalog sync's queue refused the message.
    #[error("handing the event to the catalog sync's queue: {0}")]
    Queue(#[source] StoreError),
    /// Recording a re-check failed.
    #[error("recording the re-check: {0}")]
    Record(#[source] StoreError),
}

impl DeliveryError {
    /// Whether delivering the same event again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Handle(e) => e.is_retryable(),
            // Also a refusal that is not about the object (401/403: the key lacks a permission,
            // an unexpected status): Stripe delivers again for 3 days, time to fix the key.
            Self::Stripe { source, .. } => {
                source.is_retryable() || matches!(source, PaymentsError::Rejected { .. })
            }
            Self::Queue(e) | Self::Record(e) => e.is_retryable(),
        }
    }

    /// The error for an event that is malformed at `field`.
    fn malformed(field: &str, message: impl Into<String>) -> Self {
        Self::Handle(HandleError::Malformed(DecodeError {
            field: field.to_owned(),
            message: message.into(),
        }))
    }
}

impl<Store, Publisher, Stripe, Time> Services<Store, Publisher, Stripe, Time>
where
    Store: InventoryStore + ReconciliationLog,
    Publisher: StockPublisher,
    Stripe: Payments + StripeObjects,
    Time: Clock,
{
    /// Handles one webhook body (its signature already checked), snapshot or thin. What can
    /// never be handled is parked as `event:{id}`, like a replayed event (the replay then passes
    /// over it too), and alarmed on through the reconciler's `Parked` count.
    ///
    /// # Errors
    /// [`DeliveryError`] only when delivering it again may succeed (or it could not be parked).
    pub async fn deliver(
        &self,
        event: &Value,
        catalog: &impl CatalogQueue,
    ) -> Result<Delivered, DeliveryError>
    where
        Store: ParkingLot,
    {
        match self.route_delivery(event, catalog).await {
            Err(e) if !e.is_retryable() => {
                let id = event.get("id").and_then(Value::as_str).unwrap_or("unknown");
                let now = self.clock.now();
                let parked = Parked {
                    id: format!("event:{id}"),
                    reason: e.to_string(),
                    attempts: 1,
                    state: ParkedState::Parked,
                    first_failed: now,
                    last_failed: now,
                    event: Some(event.clone()),
                };
                tracing::error!(stripe_event_id = id, error = %e, "webhook event parked: it can never be handled as it is");
                self.store
                    .save_parked(&parked)
                    .await
                    .map_err(DeliveryError::Record)?;
                Ok(Delivered::Parked(e.to_string()))
            }
            other => other,
        }
    }

    /// [`Self::deliver`] without the parking: every failure is returned (`stockbridge parked
    /// retry` of a parked webhook event, which keeps its own record).
    ///
    /// # Errors
    /// [`DeliveryError`]; see [`DeliveryError::is_retryable`].
    pub async fn route_delivery(
        &self,
        event: &Value,
        catalog: &impl CatalogQueue,
    ) -> Result<Delivered, DeliveryError> {
        if !is_thin(event) {
            let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
            if CATALOG_EVENT_TYPES.contains(&kind) {
                return self.to_catalog(event, catalog).await;
            }
            return Ok(Delivered::Handled(self.handle_stripe_event(event).await?));
        }
        let thin = decode_thin(event, "body").map_err(HandleError::from)?;
        if let Some(refused) = self.refuse_livemode(&thin) {
            return Ok(Delivered::Handled(self.handle_decoded(refused).await?));
        }
        match thin.event_type.as_str() {
            PING => Ok(Delivered::Ping),
            GENERATION_FAILURE_RESOLVED => Ok(Delivered::Recovered(
                self.recover_generation_failure(&thin, catalog).await?,
            )),
            _ if thin
                .v1_type()
                .is_some_and(|t| CATALOG_EVENT_TYPES.contains(&t)) =>
            {
                self.to_catalog(event, catalog).await
            }
            _ => Ok(Delivered::Handled(self.handle_thin(&thin).await?)),
        }
    }

    /// Handles one EventBridge envelope whose `detail` may be thin (the `inventory` Lambda).
    ///
    /// # Errors
    /// [`DeliveryError`]; see [`DeliveryError::is_retryable`].
    pub async fn handle_envelope(&self, raw: &Value) -> Result<Handled, DeliveryError> {
        let Some(detail) = raw.get("detail").filter(|d| is_thin(d)) else {
            return Ok(self.handle(raw).await?);
        };
        let source = raw.get("source").and_then(Value::as_str).unwrap_or("");
        let thin = match foreign_source(source, detail, &self.config.filter) {
            Some(refused) => return Ok(self.handle_decoded(refused).await?),
            None => decode_thin(detail, "detail").map_err(HandleError::from)?,
        };
        if let Some(refused) = self.refuse_livemode(&thin) {
            return Ok(self.handle_decoded(refused).await?);
        }
        self.handle_thin(&thin).await
    }

    /// A thin event of the other mode is refused like a snapshot one (the same refusal, logged
    /// by the same handler).
    fn refuse_livemode(&self, thin: &ThinEvent) -> Option<Decoded> {
        let configured = self.config.filter.livemode;
        let event = thin.livemode?;
        (event != configured).then(|| Decoded::Refused {
            event_id: Some(thin.id.clone()),
            refusal: Refusal::LivemodeMismatch { event, configured },
        })
    }

    /// A thin order or hold event: its object read back, then the snapshot handler.
    async fn handle_thin(&self, thin: &ThinEvent) -> Result<Handled, DeliveryError> {
        let Some(v1_type) = thin.v1_type().filter(|t| HANDLED_EVENT_TYPES.contains(t)) else {
            info!(stripe_event_id = %thin.id, event_type = %thin.event_type, "thin event type not handled: ignored");
            return Ok(Handled::Ignored);
        };
        let related = thin.related.as_ref().ok_or_else(|| {
            DeliveryError::malformed("related_object", "missing on a v1 resource's thin event")
        })?;
        let kind = object_kind(&related.kind).ok_or_else(|| {
            DeliveryError::malformed(
                "related_object.type",
                format!("{} is not what a {v1_type} event is about", related.kind),
            )
        })?;
        let object = self.read_object(kind, &related.kind, &related.id).await?;
        let livemode = thin
            .livemode
            .or_else(|| object.get("livemode").and_then(Value::as_bool))
            .unwrap_or(self.config.filter.livemode);
        let event = snapshot_event(&thin.id, v1_type, thin.created, livemode, object);
        if v1_type == CHECKOUT_COMPLETED {
            // The session is read as it is now: paid now does not say paid at completion (a
            // delayed method may have cleared since), so `created` is only a lower bound on the
            // payment, as for a session the reconciler finds without an event. A session that
            // completed before its products were managed is then left to its other events.
            return Ok(self.apply_session_without_event(&event).await?);
        }
        Ok(self.handle_stripe_event(&event).await?)
    }

    /// An object as Stripe has it now (`name`: its type, for the error).
    pub(crate) async fn read_object(
        &self,
        kind: ObjectKind,
        name: &str,
        id: &str,
    ) -> Result<Value, DeliveryError> {
        self.payments
            .object(kind, id)
            .await
            .map_err(|source| DeliveryError::Stripe {
                what: format!("{name} {id}"),
                source,
            })
    }

    /// Hands a catalog event to the catalog sync's queue, as it is.
    async fn to_catalog(
        &self,
        event: &Value,
        catalog: &impl CatalogQueue,
    ) -> Result<Delivered, DeliveryError> {
        catalog
            .send(&event.to_string())
            .await
            .map_err(DeliveryError::Queue)?;
        Ok(Delivered::ForCatalog)
    }
}

/// The snapshot event a thin one (or a lost one) stands for: its object as read back.
pub(crate) fn snapshot_event(
    id: &str,
    event_type: &str,
    created: i64,
    livemode: impl Into<Value>,
    object: Value,
) -> Value {
    json!({
        "id": id,
        "object": "event",
        "type": event_type,
        "created": created,
        "livemode": livemode.into(),
        "data": {"object": object},
    })
}

/// The object a v1 thin event about `kind` is read back as.
pub(crate) fn object_kind(kind: &str) -> Option<ObjectKind> {
    match kind {
        "checkout.session" => Some(ObjectKind::CheckoutSession),
        "payment_intent" => Some(ObjectKind::PaymentIntent),
        "charge" => Some(ObjectKind::Charge),
        "dispute" => Some(ObjectKind::Dispute),
        _ => None,
    }
}

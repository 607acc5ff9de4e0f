//! The `inventory` Lambda's edge: an EventBridge envelope in (its `detail` a snapshot event, or a
//! thin one whose object is read back from Stripe), the outcome as JSON out; a failed event
//! becomes a [`Diagnostic`] whose type says whether Lambda's retry can help.

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use stockbridge_app::orders::{Handled, Services};
use stockbridge_app::ports::{
    Clock, InventoryStore, Payments, ReconciliationLog, StockPublisher, StripeObjects,
};
use stockbridge_bootstrap::Failure;

/// Applies one event through the use case.
///
/// # Errors
/// `stockbridge.Retryable` (the store, Stripe or IoT failed: Lambda retries the event, then
/// the function's DLQ keeps it) or `stockbridge.Invalid` (the event can never apply).
pub async fn handle<S, P, Y, C>(
    inventory: &Services<S, P, Y, C>,
    event: LambdaEvent<Value>,
) -> Result<Value, Diagnostic>
where
    S: InventoryStore + ReconciliationLog,
    P: StockPublisher,
    Y: Payments + StripeObjects,
    C: Clock,
{
    match inventory.handle_envelope(&event.payload).await {
        Ok(Handled::Applied { order_id, outcome }) => Ok(
            json!({"status": "applied", "order_id": order_id.as_str(), "outcome": format!("{outcome:?}")}),
        ),
        Ok(Handled::Refused) => Ok(json!({"status": "refused"})),
        Ok(Handled::Ignored) => Ok(json!({"status": "ignored"})),
        Err(e) => {
            tracing::error!(error = %e, retryable = e.is_retryable(), request_id = %event.context.request_id, "event failed");
            let kind = if e.is_retryable() {
                Failure::Retryable
            } else {
                Failure::Invalid
            };
            Err(kind.diagnostic(&e))
        }
    }
}

#[cfg(test)]
mod tests;

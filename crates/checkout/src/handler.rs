//! The checkout function's edge: the HTTP checks and answers of [`crate::http`] around the
//! use case (`stockbridge_app::reservations`).

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use lambda_runtime::{Diagnostic, LambdaEvent};
use stockbridge_app::orders::Services;
use stockbridge_app::ports::{CatalogStore, Clock, InventoryStore, Payments, StockPublisher};
use stockbridge_bootstrap::CheckoutSettings;

use crate::http::{accept, answer};

/// One request.
///
/// # Errors
/// Never: every outcome is an HTTP answer (a failure is a 503 to retry with the same key).
pub async fn handle<S, P, Y, C>(
    inventory: &Services<S, P, Y, C>,
    settings: &CheckoutSettings,
    event: LambdaEvent<LambdaFunctionUrlRequest>,
) -> Result<LambdaFunctionUrlResponse, Diagnostic>
where
    S: InventoryStore + CatalogStore,
    P: StockPublisher,
    Y: Payments,
    C: Clock,
{
    let accepted = match accept(&event.payload, settings) {
        Ok(a) => a,
        Err(early) => return Ok(*early),
    };
    let time = time_for_holding(event.context.deadline);
    let outcome = inventory
        .reserve(&accepted.request, &accepted.key, &settings.limits, time)
        .await;
    Ok(answer(outcome, &accepted.cors, &event.context.request_id))
}

/// How long the hold may retry conflicts: what is left of the invocation, less time for the
/// Stripe call and the answer. `deadline` is the Lambda's, in ms since the epoch.
fn time_for_holding(deadline: u64) -> std::time::Duration {
    /// Kept for creating the PaymentIntent (the Stripe client's own timeout) and answering.
    const RESERVE_MS: u64 = 6_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    std::time::Duration::from_millis(deadline.saturating_sub(now).saturating_sub(RESERVE_MS))
}

#[cfg(test)]
mod tests;

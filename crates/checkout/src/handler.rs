//! The checkout function's edge: the HTTP checks and answers of [`crate::http`] around the
//! use case (`stockbridge_app::reservations`).

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use lambda_runtime::{Diagnostic, LambdaEvent};
use stockbridge_app::orders::Services;
use stockbridge_app::ports::{
    CatalogStore, Clock, Counters, InventoryStore, Payments, StockPublisher, Waitlist,
};
use stockbridge_bootstrap::CheckoutSettings;

use crate::http::{accept, answer};
use crate::waitlist::{WaitlistEdge, is_waitlist, serve};

/// One request.
///
/// # Errors
/// Never: every outcome is an HTTP answer (a failure is a 503 to retry with the same key).
pub async fn handle<S, P, Y, C>(
    inventory: &Services<S, P, Y, C>,
    settings: &CheckoutSettings,
    waitlist: Option<WaitlistEdge<'_>>,
    event: LambdaEvent<LambdaFunctionUrlRequest>,
) -> Result<LambdaFunctionUrlResponse, Diagnostic>
where
    S: InventoryStore + CatalogStore + Waitlist + Counters,
    P: StockPublisher,
    Y: Payments,
    C: Clock,
{
    let path = event.payload.raw_path.as_deref().unwrap_or_default();
    if is_waitlist(path.trim_end_matches('/')) {
        let now = inventory.clock().now();
        let request_id = &event.context.request_id;
        return Ok(serve(
            inventory.store(),
            waitlist,
            settings,
            &event.payload,
            request_id,
            now,
        )
        .await);
    }
    let accepted = match accept(&event.payload, settings) {
        Ok(a) => a,
        Err(early) => return Ok(*early),
    };
    let time = time_for_holding(event.context.deadline);
    let outcome = inventory
        .reserve(&accepted.request, &accepted.key, &settings.limits, time)
        .await;
    // A 409 offers the waitlist for what is sold out, when the shop has one.
    let offer = waitlist.map(|_| &accepted.request.store_id);
    Ok(answer(
        outcome,
        &accepted.cors,
        &event.context.request_id,
        offer,
    ))
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

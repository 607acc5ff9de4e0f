//! The sweeper's edge: a scheduler event in, the sweep's report out, stopping 10 s before the
//! invocation's deadline (the next run goes on).

use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::Value;
use stockbridge_app::orders::Services;
use stockbridge_app::ports::{CatalogReader, Clock, InventoryStore, Payments, StockPublisher};
use stockbridge_bootstrap::Failure;

/// Kept back from the invocation's deadline to finish the release in hand and answer.
const MARGIN_MS: u128 = 10_000;

/// Releases the holds that expired, page by page, until the deadline.
///
/// # Errors
/// `stockbridge.Retryable` when the first page cannot be listed (the next run retries).
pub async fn handle<S, P, Y, C>(
    inventory: &Services<S, P, Y, C>,
    event: LambdaEvent<Value>,
) -> Result<Value, Diagnostic>
where
    S: InventoryStore + CatalogReader,
    P: StockPublisher,
    Y: Payments,
    C: Clock,
{
    let deadline = deadline(&event.context);
    let report = inventory
        .sweep_expired_holds_until(deadline)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "sweep failed; the next run retries");
            Failure::Retryable.diagnostic(&e)
        })?;
    tracing::info!(?report, "sweep");
    serde_json::to_value(&report).map_err(|e| Failure::Internal.diagnostic(&e))
}

/// The invocation's deadline (epoch ms) less the margin.
fn deadline(context: &Context) -> Option<std::time::Instant> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis();
    // Past already (or within the margin): no time at all, never "no limit".
    let left_ms = u128::from(context.deadline)
        .saturating_sub(now_ms)
        .saturating_sub(MARGIN_MS);
    Some(std::time::Instant::now() + std::time::Duration::from_millis(u64::try_from(left_ms).ok()?))
}

#[cfg(test)]
mod tests;

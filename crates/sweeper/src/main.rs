//! The `sweeper` Lambda (EventBridge Scheduler, every minute): releases checkout holds still
//! pending after their expiry, page by page from the table's `pending-holds` index (stopping
//! 10 s before its timeout; the next run goes on); their stock returns and is published.
//! DynamoDB TTL is not used: it can lag by days. Each release is conditional on the hold still
//! pending, so a payment authorised at the same moment resolves to exactly one outcome. Logic:
//! `stockbridge-app` (`holds::sweep_expired_holds_until`).

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde_json::Value;
use stockbridge_bootstrap::{Config, Failure, LiveInventory};

async fn handle(inventory: &LiveInventory, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
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

/// The invocation's deadline (epoch ms) less a margin to finish the release in hand and answer.
fn deadline(context: &lambda_runtime::Context) -> Option<std::time::Instant> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis();
    // Past already (or within the margin): no time at all, never "no limit".
    let left_ms = u128::from(context.deadline)
        .saturating_sub(now_ms)
        .saturating_sub(10_000);
    Some(std::time::Instant::now() + std::time::Duration::from_millis(u64::try_from(left_ms).ok()?))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let inventory = stockbridge_bootstrap::inventory(&config).await?;
    let inventory = &inventory;
    lambda_runtime::run(service_fn(move |event| handle(inventory, event))).await
}

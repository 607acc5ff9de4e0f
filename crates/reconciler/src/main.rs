//! The `reconciler` Lambda, run on a schedule: replays Stripe events the EventBridge path
//! missed (listed from `/v1/events` after a stored cursor) through the same idempotent handler
//! as the `inventory` function. Same configuration as `inventory`, plus
//! `RECONCILER_MAX_EVENTS` (events per run, default 1000). Then checks that every product's
//! payment links are active iff it has stock, and repairs and records what is not. All logic
//! lives in `stockbridge-app` (`recovery`, `reconcile`).

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde_json::Value;
use stockbridge_bootstrap::{Adapters, Config, LiveInventory};

async fn handle(
    inventory: &LiveInventory,
    adapters: &Adapters,
    budget: usize,
    _event: LambdaEvent<Value>,
) -> Result<Value, Diagnostic> {
    let failed = |e: String| {
        tracing::error!(error = %e, "reconciler run failed; the next run retries");
        Diagnostic {
            error_type: "stockbridge.Retryable".into(),
            error_message: e,
        }
    };
    let events = inventory
        .recover_missed_events(&adapters.payments, &adapters.store, budget)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let checks = inventory
        .check_invariants(None, session_window(), false)
        .await
        .map_err(|e| failed(e.to_string()))?;
    tracing::info!(
        ?events,
        discrepancies = checks.discrepancies.len(),
        repaired = checks.repaired,
        "reconciler run"
    );
    // CloudWatch embedded metric format: one raw JSON line on stdout.
    let now = stockbridge_app::ports::Clock::now(&stockbridge_app::ports::SystemClock);
    println!(
        "{}",
        stockbridge_app::reconcile::emf_line("reconciler", Some(&events), &checks, now)
    );
    Ok(serde_json::json!({ "events": events, "links": checks }))
}

/// Paid Checkout Sessions of the last `RECONCILER_SESSION_HOURS` hours (default 24), up to
/// `RECONCILER_SESSION_GRACE_SECS` ago (default 600), must have an order.
fn session_window() -> Option<stockbridge_app::reconcile::SessionWindow> {
    let env = |name: &str, default: u32| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let now = stockbridge_app::ports::Clock::now(&stockbridge_app::ports::SystemClock);
    stockbridge_app::reconcile::SessionWindow::last_hours(
        now,
        env("RECONCILER_SESSION_HOURS", 24),
        env("RECONCILER_SESSION_GRACE_SECS", 600),
    )
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let budget = stockbridge_bootstrap::reconciler_budget()?;
    let adapters = stockbridge_bootstrap::adapters(&config).await?;
    let inventory = stockbridge_bootstrap::inventory_from(adapters.clone(), &config);
    let (inventory, adapters) = (&inventory, &adapters);
    lambda_runtime::run(service_fn(move |event| {
        handle(inventory, adapters, budget, event)
    }))
    .await
}

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
    match inventory
        .recover_missed_events(&adapters.payments, &adapters.store, budget)
        .await
    {
        Ok(report) => {
            tracing::info!(?report, "reconciler run");
            serde_json::to_value(&report).map_err(|e| Diagnostic {
                error_type: "stockbridge.Internal".into(),
                error_message: e.to_string(),
            })
        }
        Err(e) => {
            tracing::error!(error = %e, "reconciler run failed; the next run retries from the cursor");
            Err(Diagnostic {
                error_type: "stockbridge.Retryable".into(),
                error_message: e.to_string(),
            })
        }
    }
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

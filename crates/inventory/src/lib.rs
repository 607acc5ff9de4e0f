//! The `inventory` Lambda: Stripe checkout events from EventBridge to exactly-once stock.
//!
//! Reads its configuration once, builds the clients once and hands the use case to
//! `service_fn`. All logic lives in `stockbridge-app`. See the README for configuration.
//! Two binaries run this: `inventory` (deployed) and, built only with `--features crash-hook`,
//! `inventory-crash-hook` for the one end-to-end test that needs a crash between the commit
//! and the side effects.

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde_json::{Value, json};
use stockbridge_app::inventory::Handled;
use stockbridge_bootstrap::{Config, Failure, LiveInventory};

async fn handle(inventory: &LiveInventory, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    match inventory.handle(&event.payload).await {
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

/// Serve the Lambda Runtime API until the runtime stops us.
pub async fn run() -> Result<(), Error> {
    run_with(|inventory| inventory).await
}

/// [`run`], with the use case adjusted once before serving (only the test binary
/// `inventory-crash-hook` adjusts it).
pub async fn run_with(customise: impl FnOnce(LiveInventory) -> LiveInventory) -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let inventory = customise(stockbridge_bootstrap::inventory(&config).await?);
    let inventory = &inventory;
    lambda_runtime::run(service_fn(move |event| handle(inventory, event))).await
}

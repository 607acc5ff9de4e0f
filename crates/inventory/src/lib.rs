//! The `inventory` Lambda: Stripe checkout events from EventBridge to exactly-once stock.
//!
//! Reads its configuration once, builds the clients once and hands the use case to
//! `service_fn`; `handler.rs` is the edge. All logic lives in `stockbridge-app`. See the README for configuration.
//! Two binaries run this: `inventory` (deployed) and, built only with `--features crash-hook`,
//! `inventory-crash-hook` for the one end-to-end test that needs a crash between the commit
//! and the side effects.

mod handler;

use lambda_runtime::{Error, service_fn};
use stockbridge_bootstrap::{Config, LiveInventory};

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
    lambda_runtime::run(service_fn(move |event| handler::handle(inventory, event))).await
}

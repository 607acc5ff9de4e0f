//! The `sweeper` Lambda (EventBridge Scheduler, every minute): releases checkout holds still
//! pending after their expiry, page by page from the table's `pending-holds` index (stopping
//! 10 s before its timeout; the next run goes on); their stock returns and is published.
//! DynamoDB TTL is not used: it can lag by days. Each release is conditional on the hold still
//! pending, so a payment authorised at the same moment resolves to exactly one outcome. Logic:
//! `stockbridge-app` (`reservations::Services::sweep_expired_holds_until`); the edge: [`handler`].

mod handler;

use lambda_runtime::{Error, service_fn};
use stockbridge_bootstrap::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let inventory = stockbridge_bootstrap::inventory(&config).await?;
    let inventory = &inventory;
    lambda_runtime::run(service_fn(move |event| handler::handle(inventory, event))).await
}

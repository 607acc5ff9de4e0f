//! The `catalog-sync` Lambda: SQS batches from the catalog-sync queue (catalog changes from the
//! table stream through an EventBridge Pipe, and Stripe `product.*` / `price.*` /
//! `payment_link.*` events through an EventBridge rule) to Stripe. Logic: `stockbridge-app`
//! (`catalog_sync`); the edge: [`handler`]; poison messages: `stockbridge-sqs`.

mod handler;

use lambda_runtime::{Error, service_fn};
use stockbridge_bootstrap::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let (sync, dead_letters) = stockbridge_bootstrap::catalog_sync_function(&config).await?;
    let filter = config.event_filter();
    let (sync, dead_letters, filter) = (&sync, &dead_letters, &filter);
    lambda_runtime::run(service_fn(move |event| {
        handler::handle(sync, filter, dead_letters, event)
    }))
    .await
}

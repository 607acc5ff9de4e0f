//! The `broadcaster` Lambda (the table's stream, stock items only): publishes each changed
//! item's level to IoT Core, newest only, in version order, so that the functions that change
//! stock publish nothing themselves (`STOCK_LEVELS_FROM_STREAM`). Logic:
//! `stockbridge-app` (`broadcast`); the edge: [`handler`].

mod handler;

use lambda_runtime::{Error, service_fn};
use stockbridge_bootstrap::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let (store, publisher) = stockbridge_bootstrap::broadcaster(&config).await;
    let (store, publisher) = (&store, &publisher);
    lambda_runtime::run(service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            handler::handle(store, publisher, event.payload)
        },
    ))
    .await
}

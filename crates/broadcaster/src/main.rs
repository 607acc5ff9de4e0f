//! The `broadcaster` Lambda (the table's stream, stock items only): publishes each changed
//! item's level to IoT Core, newest only, in version order, so that the functions that change
//! stock publish nothing themselves (`STOCK_LEVELS_FROM_STREAM`), and the `stockbridge.low_stock`
//! alerts of the items it reads (on `MERCHANT_EVENT_BUS`). Logic:
//! `stockbridge-app` (`broadcast`); the edge: [`handler`].

mod handler;

use lambda_runtime::{Error, service_fn};
use stockbridge_bootstrap::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let (store, publisher, events) = stockbridge_bootstrap::broadcaster(&config).await;
    let (store, publisher, events) = (&store, &publisher, &events);
    lambda_runtime::run(service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            handler::handle(store, publisher, events, event.payload)
        },
    ))
    .await
}

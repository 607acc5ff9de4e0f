//! The `broadcaster` Lambda (the table's stream, stock items only): publishes each changed
//! item's level to IoT Core, newest only, in version order, so that the functions that change
//! stock publish nothing themselves (`STOCK_LEVELS_FROM_STREAM`), and the `stockbridge.low_stock`
//! alerts of the items it reads, and `stockbridge.back_in_stock` for the merchant's restocks
//! (the restock records; both on `MERCHANT_EVENT_BUS`). Logic:
//! `stockbridge-app` (`broadcast`); the edge: [`handler`].

mod handler;

use lambda_runtime::{Error, service_fn};
use stockbridge_app::ports::SystemClock;
use stockbridge_bootstrap::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let (store, publisher, events) = stockbridge_bootstrap::broadcaster(&config).await;
    // The back-in-stock announcements' links lead to the checkout function. A waitlist that
    // cannot be set up never stops the stock levels: its restocks stay pending (logged).
    let waitlist = match stockbridge_bootstrap::waitlist().await {
        Ok(Some(w)) if w.links.base.is_empty() => {
            tracing::error!(
                "WAITLIST_LINK_BASE is not set (the checkout function's URL): restocks are not announced"
            );
            None
        }
        Ok(w) => w.map(|w| w.links),
        Err(e) => {
            tracing::error!(error = %e, "the waitlist is not set up: restocks are not announced");
            None
        }
    };
    let (store, publisher, events, waitlist) = (&store, &publisher, &events, waitlist.as_ref());
    lambda_runtime::run(service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            handler::handle(
                (store, publisher, events),
                waitlist,
                &SystemClock,
                event.payload,
            )
        },
    ))
    .await
}

//! The `reconciler` Lambda, run on a schedule (EventBridge Scheduler, default every 5 minutes):
//! replays Stripe events the EventBridge path missed (from `/v1/events` after a stored cursor)
//! through the same idempotent handler as `inventory`; checks payment links against stock,
//! oversold orders against refunds, recent paid sessions against orders and the catalog
//! against Stripe; repairs and records every discrepancy; prints the counts as CloudWatch
//! embedded metrics; records the summary (`stockbridge status` shows it) and publishes it as
//! the `stockbridge.reconciliation` EventBridge event. All logic lives in `stockbridge-app`
//! (`reconcile::run`); the edge: [`handler`].
//!
//! Configuration: as `inventory`, plus `RECONCILER_MAX_EVENTS` (default 1000),
//! `RECONCILER_SESSION_HOURS` (24), `RECONCILER_SESSION_GRACE_SECS` (600),
//! `RECONCILER_CATALOG_SEGMENTS` (4; 0 skips the catalog check), `RECONCILIATION_EVENT_BUS`
//! (`default`), `RECONCILER_EVENT_OVERLAP_SECS` (60) and `STOCKBRIDGE_REPAIRS` (`act`, or `report`:
//! record every repair, carry none out).

mod handler;

use lambda_runtime::{Error, service_fn};
use stockbridge_bootstrap::{Config, ReconcilerSettings};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let settings = ReconcilerSettings::from_env()?;
    let adapters = stockbridge_bootstrap::adapters(&config).await?;
    let reconciler = handler::Reconciler {
        prefix: handler::TopicPrefix {
            iot: adapters.publisher.clone(),
            table: config.table_name.clone(),
        },
        inventory: stockbridge_bootstrap::inventory_from(adapters.clone(), &config),
        sync: stockbridge_bootstrap::catalog_sync_from(adapters),
        notifier: stockbridge_bootstrap::notifier(&settings).await,
        settings,
    };
    let reconciler = &reconciler;
    lambda_runtime::run(service_fn(move |event| reconciler.handle(event))).await
}

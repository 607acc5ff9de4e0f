//! The `reconciler` Lambda, run on a schedule (EventBridge Scheduler, default every 5 minutes):
//! replays Stripe events the EventBridge path missed (from `/v1/events` after a stored cursor)
//! through the same idempotent handler as `inventory`; checks payment links against stock,
//! oversold orders against refunds, recent paid sessions against orders and the catalog
//! against Stripe; repairs and records every discrepancy; prints the counts as CloudWatch
//! embedded metrics; records the summary (`stockbridge status` shows it) and publishes it as
//! the `stockbridge.reconciliation` EventBridge event. All logic lives in `stockbridge-app`
//! (`reconcile::run`).
//!
//! Configuration: as `inventory`, plus `RECONCILER_MAX_EVENTS` (default 1000),
//! `RECONCILER_SESSION_HOURS` (24), `RECONCILER_SESSION_GRACE_SECS` (600),
//! `RECONCILER_CATALOG_SEGMENTS` (4; 0 skips the catalog check), `RECONCILIATION_EVENT_BUS`
//! (`default`), `RECONCILER_EVENT_OVERLAP_SECS` (60) and `STOCKBRIDGE_REPAIRS` (`act`, or `report`:
//! record every repair, carry none out).

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde_json::Value;
use stockbridge_app::ports::{Clock, SystemClock};
use stockbridge_app::reconcile::{RunOptions, emf_line, run};
use stockbridge_bootstrap::{Config, Failure, LiveCatalogSync, LiveInventory, ReconcilerSettings};
use stockbridge_eventbridge::EventBridgeNotifier;

/// How long the topic-prefix check may take before the run goes on without it.
const PREFIX_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Kept back from the invocation's time to record and publish the run's summary.
const SUMMARY_MARGIN_MS: i64 = 15_000;

struct Function {
    inventory: LiveInventory,
    sync: LiveCatalogSync,
    notifier: EventBridgeNotifier,
    settings: ReconcilerSettings,
    /// For the topic-prefix claim (`stockbridge_iot::claim`).
    iot: stockbridge_iot::IotPublisher,
    table: String,
}

impl Function {
    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
        // Every store; `STOCKBRIDGE_REPAIRS=report` makes it a report-only run. The phases share
        // the invocation's time, less a margin to record and publish the summary.
        let now = SystemClock.now();
        let left_ms = i64::try_from(event.context.deadline)
            .unwrap_or(i64::MAX)
            .saturating_sub(now.0)
            .saturating_sub(SUMMARY_MARGIN_MS);
        let deadline = std::time::Instant::now()
            + std::time::Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
        let mut options: RunOptions = self.settings.options(now, Some(deadline));
        options.found_before.extend(self.check_prefix().await);
        let report = run(&self.inventory, &self.sync, &self.notifier, &options)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "reconciler run failed; the next run retries");
                Failure::Retryable.diagnostic(&e)
            })?;
        tracing::info!(summary = ?report.summary, "reconciler run");
        // CloudWatch embedded metric format: one raw JSON line on stdout.
        println!(
            "{}",
            emf_line("reconciler", &report.summary, SystemClock.now())
        );
        serde_json::to_value(&report).map_err(|e| Failure::Internal.diagnostic(&e))
    }
}

impl Function {
    /// Claims the IoT topic prefix for this deployment's table, or finds another deployment
    /// on it: then both stacks' retained stock messages overwrite each other, which the run's
    /// `Errors` metric (ReconcilerPhaseErrorsAlarm) makes impossible to miss.
    async fn check_prefix(&self) -> Option<String> {
        let checked =
            tokio::time::timeout(PREFIX_CHECK_TIMEOUT, self.iot.claim_prefix(&self.table));
        match checked.await {
            Ok(Ok(stockbridge_iot::Claim::Other(other))) => {
                let topic = self.iot.claim_topic();
                let problem = format!(
                    "iot-topic-prefix: {topic} is claimed by the deployment with table {other}: both stacks' retained stock messages overwrite each other. Give one of them another IotTopicPrefix; if that deployment is gone, clear its claim: aws iot-data publish --topic '{topic}' --retain --payload ''"
                );
                tracing::error!("{problem}");
                Some(problem)
            }
            Ok(Ok(_)) => None,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the topic-prefix claim could not be checked");
                None
            }
            Err(_) => {
                tracing::warn!("the topic-prefix claim could not be checked in time");
                None
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let settings = ReconcilerSettings::from_env()?;
    let adapters = stockbridge_bootstrap::adapters(&config).await?;
    let function = Function {
        iot: adapters.publisher.clone(),
        table: config.table_name.clone(),
        inventory: stockbridge_bootstrap::inventory_from(adapters.clone(), &config),
        sync: stockbridge_bootstrap::catalog_sync_from(adapters),
        notifier: stockbridge_bootstrap::notifier(&settings).await,
        settings,
    };
    let function = &function;
    lambda_runtime::run(service_fn(move |event| function.handle(event))).await
}

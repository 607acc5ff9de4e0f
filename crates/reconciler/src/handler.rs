//! The reconciler's edge: a scheduler event in, the run's report out. The phases share the
//! invocation's time, less a margin to record and publish the summary; a problem found before
//! the run (another deployment on the topic prefix) is recorded with it.

use std::future::Future;

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;
use stockbridge_app::catalog_sync::CatalogSync;
use stockbridge_app::orders::Services;
use stockbridge_app::ports::{
    CatalogReader, CatalogStore, Clock, CursorStore, EventLog, InventoryStore, LinkDirectory,
    Notifier, ParkingLot, Payments, ReconciliationLog, SessionLog, StockPublisher, StripeCatalog,
};
use stockbridge_app::reconcile::{RunOptions, emf_line, run};
use stockbridge_bootstrap::{Failure, ReconcilerSettings};

/// How long the topic-prefix check may take before the run goes on without it.
const PREFIX_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Kept back from the invocation's time to record and publish the run's summary.
const SUMMARY_MARGIN_MS: i64 = 15_000;

/// A check made before each run whose problem the run records (and alarms on).
pub trait PrefixCheck: Send + Sync {
    /// The problem, if any.
    fn problem(&self) -> impl Future<Output = Option<String>> + Send;
}

/// The reconciler: the use cases it runs, its settings and the check before each run.
pub struct Reconciler<S, P, Y, C, N, T> {
    /// Events, links, refunds, sessions.
    pub inventory: Services<S, P, Y, C>,
    /// The catalog check.
    pub sync: CatalogSync<S, Y, C>,
    /// Where the summary event goes.
    pub notifier: N,
    /// `RECONCILER_*`, `STOCKBRIDGE_REPAIRS`.
    pub settings: ReconcilerSettings,
    /// The topic-prefix claim.
    pub prefix: T,
}

impl<S, P, Y, C, N, T> Reconciler<S, P, Y, C, N, T>
where
    S: InventoryStore + CatalogReader + ReconciliationLog + CatalogStore + CursorStore + ParkingLot,
    P: StockPublisher,
    Y: Payments + LinkDirectory + SessionLog + EventLog + StripeCatalog,
    C: Clock,
    N: Notifier,
    T: PrefixCheck,
{
    /// One run: every store, repairs on unless `STOCKBRIDGE_REPAIRS=report`.
    ///
    /// # Errors
    /// `stockbridge.Retryable` when the run could not be recorded (the next run retries).
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
        // The deadline is wall-clock time: measured against the system's, whatever the clock
        // port says.
        let wall_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let left_ms = i64::try_from(event.context.deadline)
            .unwrap_or(i64::MAX)
            .saturating_sub(wall_ms)
            .saturating_sub(SUMMARY_MARGIN_MS);
        let now = self.inventory.clock().now();
        let deadline = std::time::Instant::now()
            + std::time::Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
        let mut options: RunOptions = self.settings.options(now, Some(deadline));
        let checked = tokio::time::timeout(PREFIX_CHECK_TIMEOUT, self.prefix.problem()).await;
        match checked {
            Ok(problem) => options.found_before.extend(problem),
            Err(_) => tracing::warn!("the topic-prefix claim could not be checked in time"),
        }
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
            emf_line("reconciler", &report.summary, self.inventory.clock().now())
        );
        serde_json::to_value(&report).map_err(|e| Failure::Internal.diagnostic(&e))
    }
}

/// The IoT topic prefix claimed for this deployment's table (`stockbridge_iot::claim`): another
/// deployment on it makes both stacks' retained stock messages overwrite each other, which the
/// run's `Errors` metric (ReconcilerPhaseErrorsAlarm) makes impossible to miss.
pub struct TopicPrefix {
    /// The claim's client.
    pub iot: stockbridge_iot::IotPublisher,
    /// This deployment's table: the claim's value.
    pub table: String,
}

impl PrefixCheck for TopicPrefix {
    async fn problem(&self) -> Option<String> {
        match self.iot.claim_prefix(&self.table).await {
            Ok(stockbridge_iot::Claim::Other(other)) => {
                let topic = self.iot.claim_topic();
                let problem = format!(
                    "iot-topic-prefix: {topic} is claimed by the deployment with table {other}: both stacks' retained stock messages overwrite each other. Give one of them another IotTopicPrefix; if that deployment is gone, clear its claim: aws iot-data publish --topic '{topic}' --retain --payload ''"
                );
                tracing::error!("{problem}");
                Some(problem)
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "the topic-prefix claim could not be checked");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;

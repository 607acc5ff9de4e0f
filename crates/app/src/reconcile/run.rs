//! One reconciler run: every phase under its share of the time, each failure isolated.

use stockbridge_domain::StoreId;
use tracing::warn;

use super::summary::{LAST_RUN_CHECKPOINT, RunSummary};
use super::{Budget, CheckReport, LINKS_CHECKPOINT, SessionWindow, phase, sessions_to_check};
use crate::orders::Services;
use crate::parking::{Failures, ParkingLot};
use crate::ports::{
    CatalogReader, Clock, InventoryStore, LinkDirectory, Payments, ReconciliationLog, SessionLog,
    StockPublisher, StoreError,
};

/// What one reconciler run covers.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Only this store (the catalog check, which is per product, is skipped).
    pub store: Option<StoreId>,
    /// Report only: no replay, no repair.
    pub dry_run: bool,
    /// Events replayed at most.
    pub max_events: usize,
    /// Seconds re-listed before the replay cursor (`/v1/events` is eventually consistent).
    pub event_overlap_secs: u32,
    /// Paid sessions to check for an order.
    pub sessions: Option<SessionWindow>,
    /// Parallel scan segments of the catalog check (0: skip the catalog check).
    pub catalog_segments: u32,
    /// Catalog changes younger than this are left to the sync (ms).
    pub catalog_grace_ms: i64,
    /// Stripe list requests of the catalog check per run (0: no limit).
    pub catalog_max_pages: usize,
    /// The run's time, shared out among its phases.
    pub budget: Budget,
    /// Problems the caller found outside the phases (the Lambda's topic-prefix claim),
    /// recorded with the run's errors: `stockbridge status`, the summary event, the metrics.
    pub found_before: Vec<String>,
}

/// Everything a run found and did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    /// Event replay (`None` in a dry run).
    pub events: Option<crate::reconcile::recovery::RecoveryReport>,
    /// Links, refunds and sessions.
    pub links: CheckReport,
    /// Catalog against Stripe (`None` when skipped).
    pub catalog: Option<crate::catalog_sync::CatalogCheckReport>,
    /// The summary.
    pub summary: RunSummary,
}

/// Why a run could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Reading the parking lot or recording the summary failed. (A phase that fails is
    /// reported in the summary's `errors`; the others still run.)
    #[error("recording the summary: {0}")]
    Store(#[from] StoreError),
}

/// One reconciler run: replay missed events, check links / refunds / sessions, check the
/// catalog against Stripe, then record the summary (checkpoint `last_reconcile`) and publish
/// it. A failed publish is logged, not fatal: the summary is recorded and the metrics printed.
///
/// # Errors
/// [`RunError`].
pub async fn run<S, P, Y, C, N>(
    inventory: &Services<S, P, Y, C>,
    sync: &crate::catalog_sync::CatalogSync<S, Y, C>,
    notifier: &N,
    options: &RunOptions,
) -> Result<RunReport, RunError>
where
    S: InventoryStore
        + CatalogReader
        + ReconciliationLog
        + crate::ports::CatalogStore
        + crate::ports::CursorStore
        + ParkingLot,
    P: StockPublisher,
    Y: Payments + LinkDirectory + SessionLog + crate::ports::EventLog + crate::ports::StripeCatalog,
    C: Clock,
    N: crate::ports::Notifier,
{
    // `stockbridge pause repairs`: everything is computed and recorded, nothing carried out.
    let controls = inventory.store.controls().await?;
    let options = &RunOptions {
        dry_run: options.dry_run || controls.repairs_paused,
        ..options.clone()
    };
    if controls.repairs_paused {
        warn!("repairs are paused (`stockbridge resume repairs`): this run only reports");
    }
    // Each phase that cannot run to its end is reported; the next one still runs. Each gets an
    // equal share of the time left, refunds first: money owed to a customer.
    let mut errors = Vec::new();
    let store = options.store.as_ref();
    let dry_run = options.dry_run;
    let budget = &options.budget;
    let mut failures = Failures::load(&inventory.store).await?;
    let f = &mut failures;
    let mut checks = CheckReport::default();
    phase(
        &mut errors,
        "refunds",
        inventory.check_refunds(store, dry_run, f, &mut checks, &budget.share(6)),
    )
    .await;
    let events = events_phase(inventory, options, &mut errors).await;
    links_phase(inventory, options, f, &mut checks, &mut errors).await?;
    if let Some(window) = sessions_to_check(options.sessions, checks.managed_since, &mut errors) {
        phase(
            &mut errors,
            "sessions",
            inventory.check_paid_sessions(store, window, dry_run, f, &mut checks, &budget.share(3)),
        )
        .await;
    }
    let cutoff = inventory.awaiting_cutoff(options.sessions);
    phase(
        &mut errors,
        "awaiting orders",
        inventory.check_awaiting((store, cutoff), dry_run, f, &mut checks, &budget.share(2)),
    )
    .await;
    let links = checks;
    let catalog = catalog_phase(sync, options, &mut errors).await;
    let mut summary = RunSummary::of(
        inventory.clock.now(),
        options.dry_run,
        events.as_ref(),
        &links,
        catalog.as_ref(),
    );
    summary.parked = crate::parking::count_parked(&inventory.store).await?;
    summary.controls = controls;
    complete(&mut summary, errors, options, events.as_ref(), &links);
    record(&inventory.store, notifier, &summary).await?;
    Ok(RunReport {
        events,
        links,
        catalog,
        summary,
    })
}

/// The event replay (a dry run only makes sure the cursor is set: setting it is not a repair,
/// and events from now on stay replayable).
async fn events_phase<S, P, Y, C>(
    inventory: &Services<S, P, Y, C>,
    options: &RunOptions,
    errors: &mut Vec<String>,
) -> Option<crate::reconcile::recovery::RecoveryReport>
where
    S: InventoryStore + crate::ports::CursorStore + ParkingLot,
    P: StockPublisher,
    Y: Payments + crate::ports::EventLog,
    C: Clock,
{
    if options.dry_run {
        let now = inventory.clock.now();
        let cursor = crate::reconcile::recovery::ensure_cursor(&inventory.store, now);
        phase(errors, "event replay cursor", cursor).await;
        return None;
    }
    let limits = (options.max_events, &options.budget.share(5));
    let replay = inventory.recover_missed_events(
        &inventory.payments,
        &inventory.store,
        &inventory.store,
        limits,
        options.event_overlap_secs,
    );
    phase(errors, "event replay", replay).await
}

/// The catalog against Stripe: every store's, so never in a run for one store.
async fn catalog_phase<S, Y, C>(
    sync: &crate::catalog_sync::CatalogSync<S, Y, C>,
    options: &RunOptions,
    errors: &mut Vec<String>,
) -> Option<crate::catalog_sync::CatalogCheckReport>
where
    S: crate::ports::CatalogStore + InventoryStore + ReconciliationLog + ParkingLot,
    Y: Payments + crate::ports::StripeCatalog,
    C: Clock,
{
    if options.store.is_some() || options.catalog_segments == 0 {
        return None;
    }
    let check = sync.check_catalog(
        options.dry_run,
        options.catalog_segments,
        options.catalog_grace_ms,
        options.catalog_max_pages,
    );
    phase(errors, "catalog check", check).await
}

/// The link check, going on where the last run's share ran out (the scheduled run over every
/// store; a CLI run, which has no deadline, checks everything).
async fn links_phase<S, P, Y, C>(
    inventory: &Services<S, P, Y, C>,
    options: &RunOptions,
    f: &mut Failures<'_, S>,
    checks: &mut CheckReport,
    errors: &mut Vec<String>,
) -> Result<(), RunError>
where
    S: InventoryStore + CatalogReader + ReconciliationLog + crate::ports::CatalogStore + ParkingLot,
    P: StockPublisher,
    Y: Payments + LinkDirectory + SessionLog,
    C: Clock,
{
    let (store, budget) = (options.store.as_ref(), &options.budget);
    let checkpointed = store.is_none() && budget.is_limited();
    let resume = if checkpointed {
        inventory
            .store
            .checkpoint(LINKS_CHECKPOINT)
            .await?
            .filter(|k| !k.is_empty())
    } else {
        None
    };
    let links_budget = (&budget.share(4), resume.as_deref());
    phase(
        errors,
        "links",
        inventory.check_links(store, options.dry_run, f, checks, links_budget),
    )
    .await;
    if checkpointed && (resume.is_some() || checks.links_resume_after.is_some()) {
        let next = checks.links_resume_after.clone().unwrap_or_default();
        inventory
            .store
            .save_checkpoint(LINKS_CHECKPOINT, &next)
            .await?;
    }
    Ok(())
}

/// What the summary adds to the counts: every phase's error, the problems found before the
/// run, and what is left for the next run.
fn complete(
    summary: &mut RunSummary,
    errors: Vec<String>,
    options: &RunOptions,
    events: Option<&crate::reconcile::recovery::RecoveryReport>,
    links: &CheckReport,
) {
    summary.errors = errors;
    summary.errors.extend(links.errors.iter().cloned());
    summary.errors.extend(options.found_before.iter().cloned());
    summary.unfinished = links.unfinished.iter().map(|p| (*p).to_owned()).collect();
    if events.is_some_and(|e| e.more) {
        summary.unfinished.push("event replay".to_owned());
    }
    if let Some(stop) = events.and_then(|e| e.stopped.clone()) {
        summary
            .errors
            .push(format!("event replay stopped at {stop}"));
    }
}

/// Records the summary (`stockbridge status` shows it) and publishes it; a failed publish is
/// logged, not fatal.
async fn record<S, N>(store: &S, notifier: &N, summary: &RunSummary) -> Result<(), RunError>
where
    S: crate::ports::CatalogStore,
    N: crate::ports::Notifier,
{
    let json = serde_json::to_string(summary).map_err(|e| StoreError::Other(Box::new(e)))?;
    store.save_checkpoint(LAST_RUN_CHECKPOINT, &json).await?;
    if summary.pipeline_broken {
        tracing::error!(events_recovered = summary.events_recovered, by_check = ?summary.by_check, "the reconciler fixed what an event should have: check the event pipeline");
    }
    if let Err(e) = notifier.notify(summary).await {
        warn!(error = %e, "the reconciliation summary was not published");
    }
    Ok(())
}

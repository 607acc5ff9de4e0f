//! Operating commands: `reconcile`, `backfill`, `status`.

use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use stockbridge_app::backfill::{
    BackfillOptions, BackfillState, CHECKPOINT as BACKFILL_CHECKPOINT,
};
use stockbridge_app::ports::{CatalogStore, Clock, CursorStore, NoNotifier, SystemClock};
use stockbridge_app::reconcile::{LAST_RUN_CHECKPOINT, RunOptions, RunReport, RunSummary, run};
use stockbridge_bootstrap::{Config, ReconcilerSettings};
use stockbridge_domain::StoreId;

pub use crate::args::ReconcileArgs;

pub async fn reconcile(config: &Config, a: ReconcileArgs) -> Result<()> {
    let store = a
        .store
        .as_deref()
        .map(StoreId::parse)
        .transpose()
        .context("--store")?;
    let adapters = stockbridge_bootstrap::adapters(config).await?;
    let inventory = stockbridge_bootstrap::inventory_from(adapters.clone(), config);
    let sync = stockbridge_bootstrap::catalog_sync_from(adapters);
    let now = SystemClock.now();
    let options = RunOptions {
        store,
        dry_run: a.dry_run || stockbridge_bootstrap::report_only()?,
        max_events: a.max_events,
        event_overlap_secs: a.event_overlap_secs,
        sessions: stockbridge_app::reconcile::SessionWindow::last_hours(
            now,
            stockbridge_bootstrap::within_retention(a.session_hours, config.retention),
            a.session_grace_secs,
        ),
        catalog_segments: a.catalog_segments,
        catalog_grace_ms: i64::from(a.session_grace_secs) * 1000,
        catalog_max_pages: 0,
        budget: stockbridge_app::reconcile::Budget::unlimited(),
        found_before: Vec::new(),
    };
    let report = if a.notify {
        let settings = ReconcilerSettings::from_env()?;
        let notifier = stockbridge_bootstrap::notifier(&settings).await;
        run(&inventory, &sync, &notifier, &options).await?
    } else {
        run(&inventory, &sync, &NoNotifier, &options).await?
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(report: &RunReport) {
    match &report.events {
        None => println!("dry run: no event replayed, nothing repaired"),
        Some(r) if r.initialized => println!(
            "replay cursor set at {} (nothing replayed: events before it are not examined)",
            r.cursor.as_deref().unwrap_or("-")
        ),
        Some(r) => println!(
            "{} events read: {} recovered (missed by the delivery path), {} already applied, {} skipped; cursor {}{}",
            r.listed,
            r.recovered,
            r.already_applied,
            r.skipped,
            r.cursor.as_deref().unwrap_or("-"),
            if r.more {
                " (more to replay: run again)"
            } else {
                ""
            }
        ),
    }
    let l = &report.links;
    println!(
        "{} items, {} payment links, {} oversold orders, {} paid sessions checked",
        l.items, l.links, l.oversold_orders, l.sessions
    );
    match &report.catalog {
        Some(c) => println!(
            "{} catalog products compared with Stripe ({} list requests)",
            c.products, c.stripe_pages
        ),
        None => println!("catalog check skipped (--store, or --catalog-segments 0)"),
    }
    let s = &report.summary;
    println!("{} discrepancies, {} repaired", s.discrepancies, s.repaired);
    for f in &s.findings {
        println!("  {f}");
    }
    if s.pipeline_broken {
        println!(
            "WARNING: some of this should have been done by events: check the Stripe event destination, the EventBridge rule and the inventory function's errors and DLQ"
        );
    }
}

/// `stockbridge backfill`.
pub async fn backfill(config: &Config, options: BackfillOptions) -> Result<()> {
    let inventory = stockbridge_bootstrap::inventory(config).await?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .context("progress bar template")?,
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let show = |s: &BackfillState| {
        let secs = started.elapsed().as_secs_f64().max(0.001);
        bar.set_message(format!(
            "{}: {} products imported ({:.0}/s), {} already in the catalog, {} skipped, {} links attached",
            s.phase,
            s.products,
            s.products as f64 / secs,
            s.existing,
            s.skipped,
            s.links
        ));
    };
    let result = inventory.backfill(&options, show).await;
    bar.finish_and_clear();
    let state = result.context("backfill stopped (run the same command again to continue)")?;
    println!(
        "backfill {}: {} products imported, {} already in the catalog, {} skipped (no active one-time default price), {} links attached, {} not attached",
        state.phase,
        state.products,
        state.existing,
        state.skipped,
        state.links,
        state.links_skipped
    );
    match &state.cursor {
        Some(c) => println!(
            "replay cursor set before the start at {c}: the reconciler replays everything after it"
        ),
        None => println!("replay cursor left as it was (already set, or no event yet)"),
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct QueueDepth {
    name: &'static str,
    url: String,
    visible: Option<i64>,
    in_flight: Option<i64>,
    error: Option<String>,
}

/// `stockbridge status`.
pub async fn status(config: &Config, json: bool) -> Result<()> {
    let store = stockbridge_bootstrap::store(config).await;
    let now = SystemClock.now();
    let cursor = store.cursor().await.context("reading the replay cursor")?;
    let last: Option<RunSummary> = store
        .checkpoint(LAST_RUN_CHECKPOINT)
        .await?
        .map(|j| serde_json::from_str(&j))
        .transpose()
        .context("the last reconcile summary is unreadable")?;
    let backfill: Option<BackfillState> = store
        .checkpoint(BACKFILL_CHECKPOINT)
        .await?
        .and_then(|j| serde_json::from_str(&j).ok());
    let queues = queue_depths().await;
    let controls = stockbridge_app::ports::InventoryStore::controls(&store)
        .await
        .context("reading the pause switches")?;
    let parked = stockbridge_app::parking::count_parked(&store)
        .await
        .context("reading the parked items")?;
    let cursor_age_secs = cursor.as_ref().map(|c| now.0 / 1000 - c.created);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "cursor": cursor.as_ref().map(|c| serde_json::json!({"event_id": c.event_id.as_ref().map(|e| e.as_str()), "created": c.created, "age_secs": cursor_age_secs})),
                "last_reconcile": last,
                "backfill": backfill,
                "queues": queues,
                "parked": parked,
                "controls": controls,
            }))?
        );
        return Ok(());
    }
    print_status(&Status {
        cursor: cursor.as_ref(),
        cursor_age_secs,
        controls: &controls,
        parked,
        last: last.as_ref(),
        backfill: backfill.as_ref(),
        queues: &queues,
    });
    Ok(())
}

/// The depth of every queue whose URL is set (stack outputs).
async fn queue_depths() -> Vec<QueueDepth> {
    let mut queues = Vec::new();
    let sqs = aws_sdk_sqs::Client::new(&stockbridge_bootstrap::aws_config().await);
    for (name, var) in [
        ("catalog-sync queue", "CATALOG_SYNC_QUEUE_URL"),
        ("catalog-sync DLQ", "CATALOG_SYNC_DLQ_URL"),
        ("inventory event DLQ", "INVENTORY_DLQ_URL"),
        (
            "broadcaster failed batches",
            "BROADCASTER_FAILED_BATCHES_URL",
        ),
    ] {
        let Some(url) = std::env::var(var).ok().filter(|v| !v.is_empty()) else {
            continue;
        };
        let r = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(
                aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            )
            .send()
            .await;
        let attr =
            |out: &aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesOutput,
             n: aws_sdk_sqs::types::QueueAttributeName| {
                out.attributes()
                    .and_then(|a| a.get(&n))
                    .and_then(|v| v.parse().ok())
            };
        queues.push(match r {
            Ok(out) => QueueDepth {
                name,
                url,
                visible: attr(
                    &out,
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
                ),
                in_flight: attr(
                    &out,
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                ),
                error: None,
            },
            Err(e) => QueueDepth {
                name,
                url,
                visible: None,
                in_flight: None,
                error: Some(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()),
            },
        });
    }
    queues
}

/// What `stockbridge status` shows.
struct Status<'a> {
    cursor: Option<&'a stockbridge_app::ports::Cursor>,
    cursor_age_secs: Option<i64>,
    controls: &'a stockbridge_app::ports::Controls,
    parked: usize,
    last: Option<&'a RunSummary>,
    backfill: Option<&'a BackfillState>,
    queues: &'a [QueueDepth],
}

/// `stockbridge status` as text.
fn print_status(st: &Status<'_>) {
    let Status {
        cursor,
        cursor_age_secs,
        controls,
        parked,
        last,
        backfill,
        queues,
    } = *st;
    match (cursor, cursor_age_secs) {
        (Some(c), Some(age)) => {
            println!(
                "replay cursor: {} ({} old){}",
                c.event_id.as_ref().map_or_else(
                    || stockbridge_app::message::rfc3339(stockbridge_domain::Timestamp(
                        c.created * 1000
                    )),
                    ToString::to_string
                ),
                human(age),
                if age > 25 * 86_400 {
                    " — WARNING: Stripe keeps events 30 days; run the reconciler"
                } else {
                    ""
                }
            );
        }
        _ => println!(
            "replay cursor: not set (the first reconciler run or `stockbridge backfill` sets it)"
        ),
    }
    println!("switches: {}", crate::switches::describe(controls));
    if parked > 0 {
        println!(
            "parked: {parked} — events or repairs that failed for good (`stockbridge parked list`)"
        );
    } else {
        println!("parked: none");
    }
    match last {
        Some(s) => {
            println!(
                "last reconcile: {}{}: {} discrepancies, {} repaired, {} events recovered{}",
                s.at,
                if s.dry_run { " (dry run)" } else { "" },
                s.discrepancies,
                s.repaired,
                s.events_recovered,
                if s.pipeline_broken {
                    " — the event pipeline missed something"
                } else {
                    ""
                }
            );
            for (check, n) in &s.by_check {
                println!("  {check}: {n}");
            }
        }
        None => println!("last reconcile: never"),
    }
    if let Some(b) = backfill {
        println!(
            "backfill: {} ({} products imported, {} links attached)",
            b.phase, b.products, b.links
        );
    }
    if queues.is_empty() {
        println!(
            "queues: set CATALOG_SYNC_QUEUE_URL, CATALOG_SYNC_DLQ_URL, INVENTORY_DLQ_URL and BROADCASTER_FAILED_BATCHES_URL (stack outputs) to see their depth"
        );
    }
    for q in queues {
        match &q.error {
            None => println!(
                "{}: {} waiting, {} in flight",
                q.name,
                q.visible.unwrap_or(0),
                q.in_flight.unwrap_or(0)
            ),
            Some(e) => println!("{}: unreadable ({e})", q.name),
        }
    }
}

fn human(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

//! `stockbridge parked list | retry ID | skip ID`: replayed events and repairs the reconciler
//! set aside after they failed for good (see `stockbridge_app::parking`).

use anyhow::{Context, Result, bail};
use stockbridge_app::message::rfc3339;
use stockbridge_app::parking::{Parked, ParkedState, ParkingLot};
use stockbridge_app::ports::{Clock, SystemClock};
use stockbridge_bootstrap::Config;

/// What to do.
pub enum Action {
    /// Show every record.
    List,
    /// Try it again now (an event) or at the next reconciler run (a repair).
    Retry(String),
    /// Never try it again (kept, marked skipped).
    Skip(String),
}

pub async fn run(config: &Config, action: Action, json: bool) -> Result<()> {
    let store = stockbridge_bootstrap::store(config).await;
    match action {
        Action::List => list(&store.parked().await?, json),
        Action::Retry(id) => {
            let record = find(&store, &id).await?;
            match &record.event {
                Some(event) => retry_event(config, &store, record.clone(), event).await,
                None => {
                    store.remove_parked(&id).await?;
                    println!(
                        "{id}: the next reconciler run (or `stockbridge reconcile`) tries it again"
                    );
                    Ok(())
                }
            }
        }
        Action::Skip(id) => {
            let mut record = find(&store, &id).await?;
            record.state = ParkedState::Skipped;
            store.save_parked(&record).await?;
            println!("{id}: skipped; no run will try it again");
            Ok(())
        }
    }
}

async fn find<L: ParkingLot>(lot: &L, id: &str) -> Result<Parked> {
    match lot.parked().await?.into_iter().find(|p| p.id == id) {
        Some(p) => Ok(p),
        None => bail!("nothing parked as {id:?} (see `stockbridge parked list`)"),
    }
}

/// An event is handled again now, through the same handler as the replay.
async fn retry_event<L: ParkingLot>(
    config: &Config,
    lot: &L,
    mut record: Parked,
    event: &serde_json::Value,
) -> Result<()> {
    let adapters = stockbridge_bootstrap::adapters(config).await?;
    let inventory = stockbridge_bootstrap::inventory_from(adapters, config);
    // A webhook parks thin events too (and the health event): those go through the webhook's
    // own routing, which reads them back from Stripe (catalog events to CATALOG_SYNC_QUEUE_URL).
    let result = if stockbridge_app::decode::thin_event::is_thin(event) {
        let queue = stockbridge_bootstrap::catalog_queue().await;
        inventory
            .route_delivery(event, &queue)
            .await
            .map(|d| format!("{d:?}"))
            .map_err(anyhow::Error::from)
    } else {
        inventory
            .handle_stripe_event(event)
            .await
            .map(|h| format!("{h:?}"))
            .map_err(anyhow::Error::from)
    };
    match result {
        Ok(handled) => {
            lot.remove_parked(&record.id).await?;
            println!("{}: applied ({handled})", record.id);
            Ok(())
        }
        Err(e) => {
            record.attempts += 1;
            record.reason = e.to_string();
            record.last_failed = SystemClock.now();
            lot.save_parked(&record).await?;
            Err(e).with_context(|| format!("{} failed again; it stays parked", record.id))
        }
    }
}

fn list(records: &[Parked], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(records)?);
        return Ok(());
    }
    if records.is_empty() {
        println!("nothing parked");
    }
    for p in records {
        let state = match p.state {
            ParkedState::Retrying => "retrying",
            ParkedState::Parked => "PARKED",
            ParkedState::Skipped => "skipped",
        };
        println!(
            "{:<8} {}  ({} attempts, first {}, last {})\n         {}",
            state,
            p.id,
            p.attempts,
            rfc3339(p.first_failed),
            rfc3339(p.last_failed),
            p.reason
        );
    }
    Ok(())
}

//! `stockbridge stock show|set|adjust|held|publish` and `stockbridge history`.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use stockbridge_app::broadcast::broadcast_levels;
use stockbridge_app::message::rfc3339;
use stockbridge_app::ports::{CatalogReader as _, Clock, InventoryStore, SystemClock};
use stockbridge_app::stock_admin::StockError;
use stockbridge_bootstrap::Config;
use stockbridge_domain::{CatalogItem, OrderId, PaymentLinkId, ProductId, StockChange, StoreId};

use super::store_id;
use crate::args::StockCommand;

#[derive(Serialize)]
struct ItemView<'a> {
    product_id: &'a str,
    store_id: &'a str,
    name: &'a str,
    available: u64,
    /// Units pending checkouts hold (not available, not sold yet).
    held: u64,
    /// `available + held`: what `stock set` sets.
    on_hand: u64,
    version: u64,
    sold_out: bool,
    /// Shard items its units are spread over (`stock shard`; 0: none).
    shards: u16,
    payment_links: Vec<&'a str>,
    deactivated_links: Vec<&'a str>,
    updated_at: String,
    /// Orders paid before this moment never move the stock (`null`: no boundary, an item
    /// stored before stockbridge kept one; a `stock set` gives it one).
    managed_since: Option<String>,
    /// The low-stock alert's threshold (`stock set --low-stock`; `null`: none).
    low_stock: Option<u64>,
    /// Crossed and not yet re-armed (`false` without a threshold).
    low: bool,
}

fn view(i: &CatalogItem) -> ItemView<'_> {
    ItemView {
        product_id: i.product_id.as_str(),
        store_id: i.store_id.as_str(),
        name: &i.name,
        available: i.level().available,
        held: i.held,
        on_hand: i.level().available + i.held,
        version: i.level().version,
        sold_out: i.level().available == 0,
        shards: i.spread.map_or(0, |s| s.shards),
        payment_links: i.payment_links.iter().map(PaymentLinkId::as_str).collect(),
        deactivated_links: i
            .deactivated_links
            .iter()
            .map(PaymentLinkId::as_str)
            .collect(),
        updated_at: rfc3339(i.updated_at),
        managed_since: (i.managed_since.0 > 0).then(|| rfc3339(i.managed_since)),
        low_stock: i.low_stock.map(|l| l.threshold),
        low: i.low_stock.is_some_and(|l| l.low),
    }
}

/// The item `--store` (or the default store) and PRODUCT name.
fn item_key(
    config: &Config,
    store: Option<String>,
    product: String,
) -> Result<(StoreId, ProductId)> {
    Ok((
        store_id(config, store)?,
        ProductId::parse(product).context("PRODUCT")?,
    ))
}

/// `stock ...`: dispatches to the command.
pub async fn run(c: &Config, command: StockCommand) -> Result<()> {
    match command {
        StockCommand::Show {
            product,
            store,
            json,
        } => show(c, store, product, json).await,
        StockCommand::Set {
            product,
            units,
            store,
            expect_version,
            recount,
            op_id,
            low_stock,
        } => {
            let what = if recount {
                StockChange::Recount(units)
            } else {
                StockChange::Set(units)
            };
            // The threshold first: the stock change's own stream record then meets the new
            // one (set after it, the change could cross the old threshold).
            if let Some(threshold) = low_stock {
                set_low_stock(c, store.clone(), product.clone(), threshold).await?;
            }
            change(c, store, product, what, expect_version, op_id).await
        }
        StockCommand::Held {
            store,
            repair,
            json,
        } => held(c, store, repair, json).await,
        StockCommand::Publish { product, store } => publish(c, store, product).await,
        StockCommand::Shard {
            product,
            store,
            shards,
        } => shard(c, store, product, shards).await,
        StockCommand::Adjust {
            product,
            delta,
            store,
            expect_version,
            op_id,
        } => {
            let what = StockChange::Adjust(delta);
            change(c, store, product, what, expect_version, op_id).await
        }
    }
}

/// `stock set --low-stock N`: the item's low-stock threshold (0: none), armed.
async fn set_low_stock(
    config: &Config,
    store: Option<String>,
    product: String,
    threshold: u64,
) -> Result<()> {
    use stockbridge_app::ports::LowStockStore;
    let (s, p) = item_key(config, store, product)?;
    let db = stockbridge_bootstrap::store(config).await;
    let threshold = (threshold > 0).then_some(threshold);
    if !db.set_low_stock(&s, &p, threshold).await? {
        bail!("product {p} is not in the catalog of store {s}");
    }
    match threshold {
        Some(t) => println!(
            "{s}/{p}: stockbridge.low_stock when {t} or fewer can be sold (re-armed at {})",
            stockbridge_domain::low_stock::rearm_level(t)
        ),
        None => println!("{s}/{p}: no low-stock alert"),
    }
    Ok(())
}

/// `stock show`: one item's level, as text or JSON.
pub async fn show(
    config: &Config,
    store: Option<String>,
    product: String,
    json: bool,
) -> Result<()> {
    let (s, p) = item_key(config, store, product)?;
    let db = stockbridge_bootstrap::store(config).await;
    let Some(item) = db.item(&s, &p).await? else {
        bail!(
            "product {p} is not in the catalog of store {s}; import it with `stockbridge catalog import FILE`"
        );
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&view(&item))?);
    } else {
        let level = item.level();
        let state = if level.available == 0 {
            " (sold out)".to_owned()
        } else if let Some(spread) = item.spread {
            format!(" (over {} shards)", spread.shards)
        } else {
            String::new()
        };
        let alert = match item.low_stock {
            Some(l) if l.low => format!(", low (alert at {})", l.threshold),
            Some(l) => format!(", low-stock alert at {}", l.threshold),
            None => String::new(),
        };
        println!(
            "{} {} in {}: {} available{state}, {} held, {} on hand, version {}{alert}",
            item.product_id,
            item.name,
            item.store_id,
            level.available,
            item.held,
            level.available + item.held,
            level.version
        );
    }
    Ok(())
}

/// `stock shard`: spread a hot product over shard items, or collect it (`--shards 1`).
pub async fn shard(
    config: &Config,
    store: Option<String>,
    product: String,
    shards: u16,
) -> Result<()> {
    let (s, p) = item_key(config, store, product)?;
    if shards == 0 {
        bail!("--shards must be at least 1 (1 collects the units back into the item)");
    }
    let db = stockbridge_bootstrap::store(config).await;
    let now = stockbridge_app::ports::Clock::now(&stockbridge_app::ports::SystemClock);
    let item = stockbridge_app::shards::spread(&db, &s, &p, shards, now).await?;
    match item.spread {
        Some(spread) => println!(
            "{p} in {s}: {} available over {} shards",
            item.level().available,
            spread.shards
        ),
        None => println!(
            "{p} in {s}: {} available on the item, no shards",
            item.available
        ),
    }
    Ok(())
}

/// `stock publish`: the level of one item, or of every item of the store, published as stored
/// now, whatever `STOCK_LEVELS_FROM_STREAM` says (the broadcaster's use case, run once).
pub async fn publish(
    config: &Config,
    store: Option<String>,
    product: Option<String>,
) -> Result<()> {
    let s = store_id(config, store)?;
    let one = product.is_some();
    let (db, publisher, events) = stockbridge_bootstrap::broadcaster(config).await;
    let keys: Vec<(StoreId, ProductId)> = match product {
        Some(p) => vec![(s.clone(), ProductId::parse(p).context("PRODUCT")?)],
        None => db
            .store_items(&s)
            .await?
            .into_iter()
            .map(|i| (i.store_id, i.product_id))
            .collect(),
    };
    if keys.is_empty() {
        bail!("store {s} has no item in the catalog: check --store");
    }
    // As the broadcaster does: a pending low-stock alert (one that could not go out) is sent
    // now, on MERCHANT_EVENT_BUS.
    let report = broadcast_levels(&db, &publisher, Some(&events), &keys).await;
    println!(
        "{} published, {} not in the catalog, {} refused for good, {} failed (of {} in {s})",
        report.published,
        report.gone,
        report.refused,
        report.failed.len(),
        keys.len()
    );
    for ((_, p), reason) in &report.failed {
        eprintln!("{p}: {reason}");
    }
    if report.refused + report.failed.len() > 0 {
        bail!(
            "some levels were not published (see the log lines above): run it again once IoT accepts them"
        );
    }
    if report.gone > 0 && one {
        bail!("product {} is not in the catalog of store {s}", keys[0].1);
    }
    Ok(())
}

/// `stock held`: held units against the pending orders, repaired with `--repair`.
pub async fn held(config: &Config, store: Option<String>, repair: bool, json: bool) -> Result<()> {
    let store = store_id(config, store)?;
    let inventory = stockbridge_bootstrap::inventory(config).await?;
    let drifts = inventory.check_held(&store, repair).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&drifts)?);
    } else if drifts.is_empty() {
        println!("held units in {store} match the pending orders");
    } else {
        for d in &drifts {
            let state = match (repair, d.repaired) {
                (false, _) => "run with --repair to set it",
                (true, true) => "repaired",
                (true, false) => "changed meanwhile: run again",
            };
            println!(
                "{}: held {} but pending orders hold {}: {state}",
                d.product_id, d.recorded, d.pending
            );
        }
    }
    Ok(())
}

pub async fn change(
    config: &Config,
    store: Option<String>,
    product: String,
    change: StockChange,
    expect: Option<u64>,
    op_id: Option<String>,
) -> Result<()> {
    let (s, p) = item_key(config, store, product)?;
    let op = match op_id {
        Some(op)
            if !op.is_empty() && op.len() <= 100 && op.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            op
        }
        Some(_) => bail!("--op-id: 1 to 100 printable ASCII characters"),
        None => {
            let op = format!("op_{:x}{:08x}", SystemClock.now().0, rand_suffix());
            eprintln!(
                "operation {op} (if this command fails unclearly, run it again with --op-id {op}: it is never applied twice)"
            );
            op
        }
    };
    let inventory = stockbridge_bootstrap::inventory(config).await?;
    let (level, already) = match inventory
        .apply_operation(&s, &p, change, expect, "cli", Some(&op))
        .await
    {
        Ok(r) => r,
        // Refused, or applied with a side effect to repeat: a rerun would change nothing.
        Err(
            e @ (StockError::Invalid(_)
            | StockError::NotFound { .. }
            | StockError::VersionMismatch { .. }
            | StockError::Effect(_)
            | StockError::OperationReused { .. }),
        ) => return Err(anyhow::Error::new(e).context(format!("operation {op}"))),
        // Unclear (the store failed, or kept changing): it may or may not be applied.
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "operation {op}: rerun with --op-id {op}; it is applied once at most"
            )));
        }
    };
    let note = if already {
        " (operation already applied: nothing changed)"
    } else {
        ""
    };
    println!(
        "{p} in {s}: {} available, {} held, version {}{note}",
        level.available, level.held, level.version
    );
    Ok(())
}

/// A few random bits for a generated operation id (the time alone can repeat across hosts).
fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish() as u32
}

pub async fn history(
    config: &Config,
    store: Option<String>,
    product: String,
    json: bool,
) -> Result<()> {
    let (s, p) = item_key(config, store, product)?;
    let db = stockbridge_bootstrap::store(config).await;
    let ledger = db.ledger(&s, &p).await?;
    let order_ids: Vec<OrderId> = ledger
        .iter()
        .filter_map(|e| e.cause.order_id.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let orders = db.orders(&order_ids).await?;
    if json {
        let ledger: Vec<_> = ledger
            .iter()
            .map(|e| {
                serde_json::json!({
                    "version": e.version, "delta": e.delta, "level": e.level, "held": e.held, "operation": e.operation, "cause": e.cause.kind.as_str(),
                    "stripe_event_id": e.cause.stripe_event_id.as_ref().map(|i| i.as_str()),
                    "order_id": e.cause.order_id.as_ref().map(|i| i.as_str()),
                    "actor": e.cause.actor, "at": rfc3339(e.at),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"ledger": ledger, "orders": orders}))?
        );
        return Ok(());
    }
    println!("ledger of {p} in {s}:");
    for e in &ledger {
        let why = e.cause.order_id.as_ref().map_or_else(
            || e.cause.actor.clone().unwrap_or_default(),
            ToString::to_string,
        );
        println!(
            "  v{:<5} {:>+6} -> {:<6} held {:<5} {:<8} {} {}",
            e.version,
            e.delta,
            e.level,
            e.held,
            e.cause.kind.as_str(),
            why,
            rfc3339(e.at)
        );
    }
    println!("orders:");
    for o in &orders {
        let refund = o
            .refund_id
            .as_ref()
            .map_or(String::new(), |r| format!(" refund {r}"));
        let after = o.after_sale.as_ref().map_or(String::new(), |a| {
            format!(
                " merchant refunded {}{}{}{}",
                a.refunded,
                if a.refunded_in_full { " (in full)" } else { "" },
                a.dispute
                    .as_ref()
                    .map_or(String::new(), |d| format!(", dispute {d}")),
                if a.returned.is_some() {
                    ", units returned"
                } else {
                    ""
                }
            )
        });
        println!(
            "  {} {} ({}){refund}{after}",
            o.order_id,
            o.status.as_str(),
            o.payment.as_str()
        );
    }
    Ok(())
}

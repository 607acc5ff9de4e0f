//! The `stockbridge` command line: create the table, import a catalog, show and change stock,
//! read an item's history, reconcile, backfill an existing Stripe account and show the
//! operating status. Same configuration as the Lambda (see the README).

use std::path::{Path, PathBuf};

mod ops;
mod parked;
mod preflight;
mod switches;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};
use stockbridge_app::catalog::{DetailsChange, DetailsInput, put_details};
use stockbridge_app::message::rfc3339;
use stockbridge_app::ports::{Clock, InventoryStore, SystemClock};
use stockbridge_app::stock::{ImportItem, Imported, StockError};
use stockbridge_app::storefront::export_catalog;
use stockbridge_bootstrap::Config;
use stockbridge_domain::{
    CatalogItem, Money, OrderId, PaymentLinkId, ProductId, StockChange, StoreId,
};

#[derive(Parser)]
#[command(
    name = "stockbridge",
    version,
    about = "Real-time inventory on top of Stripe"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The DynamoDB table.
    Table {
        #[command(subcommand)]
        command: TableCommand,
    },
    /// The catalog.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Stock levels.
    Stock {
        #[command(subcommand)]
        command: StockCommand,
    },
    /// Replay Stripe events the EventBridge path missed (from /v1/events after the stored
    /// cursor) through the inventory handler — what the scheduled reconciler does.
    Reconcile {
        /// Replay at most this many events (the next run continues from the cursor).
        #[arg(long, default_value_t = 1000)]
        max_events: usize,
        /// Re-list this many seconds before the cursor (`/v1/events` can show an event after a
        /// newer one).
        #[arg(long, default_value_t = stockbridge_app::recovery::DEFAULT_OVERLAP_SECS)]
        event_overlap_secs: u32,
        /// Only report: replay no event and repair nothing.
        #[arg(long)]
        dry_run: bool,
        /// Check only this store's catalog (default: every store).
        #[arg(long)]
        store: Option<String>,
        /// Check that every paid Checkout Session of the last H hours has an order (0: skip).
        #[arg(long, default_value_t = 24)]
        session_hours: u32,
        /// Leave sessions younger than this many seconds alone (their events may be on the way).
        #[arg(long, default_value_t = 600)]
        session_grace_secs: u32,
        /// Parallel scan segments of the catalog-against-Stripe check (0: skip it).
        #[arg(long, default_value_t = 4)]
        catalog_segments: u32,
        /// Also publish the `stockbridge.reconciliation` event (to RECONCILIATION_EVENT_BUS).
        #[arg(long)]
        notify: bool,
        /// Print JSON: `{"events", "links", "catalog", "summary"}`.
        #[arg(long)]
        json: bool,
    },
    /// Import an existing Stripe account's products, prices and payment links into the
    /// catalog (Stripe ids kept). Sets the replay cursor first; resumable: run it again after
    /// an interruption to continue.
    Backfill {
        /// The store the products are sold in (default: DEFAULT_STORE_ID; a link's
        /// `metadata.store_id` wins for that link).
        #[arg(long)]
        store: Option<String>,
        /// Stock of new items when the product's `metadata.stock` does not say.
        #[arg(long)]
        default_stock: u64,
        /// Forget an earlier backfill's progress and start from the beginning.
        #[arg(long)]
        restart: bool,
    },
    /// Replay cursor age, last reconcile result and counts, backfill progress and queue / DLQ
    /// depths (queues from CATALOG_SYNC_QUEUE_URL, CATALOG_SYNC_DLQ_URL, INVENTORY_DLQ_URL).
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Before and after a deploy: check the account's Lambda quota, the Stripe key and event
    /// destination, the partner event source, the IoT topic prefix, the table and the queues,
    /// and explain each finding. Exits 1 when a check fails (for CI). Reads the stack's
    /// settings from the environment (docs/deploy.md "Preflight").
    Preflight {
        /// Whether the stack reserves concurrency (its ReserveConcurrency parameter).
        #[arg(long, value_enum, default_value = "yes")]
        reserve_concurrency: YesNo,
        /// Print JSON: a list of `{check, level, detail, fix?}`.
        #[arg(long)]
        json: bool,
    },
    /// After upgrading a live stack: bring records the earlier release wrote up to this
    /// release's layout (idempotent, safe while the functions run; docs/deploy.md "Upgrading
    /// a live stack"). Set RETENTION_DAYS as the stack has it.
    Migrate {
        /// Count what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop one kind of action everywhere, mid-sale, without a deploy (every function sees it
    /// within a few seconds): `repairs` (the reconciler only reports), `links` (no Payment
    /// Link switches), `refunds` (oversold orders stay due), or `all`.
    Pause {
        /// What to pause.
        #[arg(value_enum)]
        what: switches::Switch,
    },
    /// Undo `pause` (the reconciler then makes the switches and refunds left undone).
    Resume {
        /// What to resume.
        #[arg(value_enum)]
        what: switches::Switch,
    },
    /// Replayed events and repairs the reconciler set aside after they failed for good.
    Parked {
        #[command(subcommand)]
        command: ParkedCommand,
        /// Print JSON (`list`).
        #[arg(long, global = true)]
        json: bool,
    },
    /// An item's orders and ledger.
    History {
        /// Product id (the Stripe product id).
        product: String,
        /// Store id (default: DEFAULT_STORE_ID).
        #[arg(long)]
        store: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ParkedCommand {
    /// Every parked (and still retrying, or skipped) item with its reason.
    List,
    /// Try it again: an event now, through the inventory handler; a repair at the next run.
    Retry {
        /// As listed (`event:evt_…`, `refund:cs_…`, `link:plink_…`, `session:cs_…`).
        id: String,
    },
    /// Never try it again (it stays listed as skipped).
    Skip {
        /// As listed.
        id: String,
    },
}

#[derive(Subcommand)]
enum TableCommand {
    /// Create the table if it does not exist (local and first-time use; SAM creates it in AWS).
    Create,
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Import items from JSON (`[{"product_id","store_id","name","stock","payment_links":[..]}]`)
    /// or CSV (header `product_id,store_id,name,stock,payment_links`, links separated by `;`).
    /// New items are created (at stock 0 their links are switched off); existing ones get their
    /// name and links updated and keep their stock unless `--set-stock`.
    Import {
        /// The file.
        file: PathBuf,
        /// Also set the stock of existing items to the file's (compare-and-set against the
        /// level read during the import). Without it, existing items keep their stock.
        #[arg(long)]
        set_stock: bool,
    },
    /// Print the storefront's catalog document of a store (products, images, prices, payment
    /// links and a stock snapshot; see docs/storefront.md). Host it next to the storefront.
    Export {
        /// Store id (default: DEFAULT_STORE_ID).
        #[arg(long)]
        store: Option<String>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum StockCommand {
    /// Show an item's stock.
    Show {
        /// Product id.
        product: String,
        /// Store id (default: DEFAULT_STORE_ID).
        #[arg(long)]
        store: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set the level (a restock from 0 switches the links back on).
    Set {
        /// Product id.
        product: String,
        /// Units.
        units: u64,
        /// Store id (default: DEFAULT_STORE_ID).
        #[arg(long)]
        store: Option<String>,
        /// Only if the item is still at this version (from `stock show`).
        #[arg(long)]
        expect_version: Option<u64>,
        /// The units are a count just made that already includes every sale paid so far: an
        /// order paid before now that arrives late moves nothing (a new management boundary).
        /// Without it, a late order still takes its unit or is refunded.
        #[arg(long)]
        recount: bool,
        /// This operation's id: recorded with the change, so running the command again with
        /// the same id (after a timeout or an unclear error) never applies it twice. Default: a
        /// new id, printed before the change is made.
        #[arg(long)]
        op_id: Option<String>,
    },
    /// Compare each item's held units with the orders still pending (run after a deploy that
    /// adds or changes held stock: old and new functions side by side can leave it wrong).
    Held {
        /// Store id (default: DEFAULT_STORE_ID).
        #[arg(long)]
        store: Option<String>,
        /// Set the ones that differ (each only if the item did not change meanwhile).
        #[arg(long)]
        repair: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add (or with a negative number, remove) units. Use `--` before a negative number.
    Adjust {
        /// Product id.
        product: String,
        /// Units to add (negative to remove).
        #[arg(allow_negative_numbers = true)]
        delta: i64,
        /// Store id (default: DEFAULT_STORE_ID).
        #[arg(long)]
        store: Option<String>,
        /// Only if the item is still at this version (from `stock show`).
        #[arg(long)]
        expect_version: Option<u64>,
        /// This operation's id: recorded with the change, so running the command again with
        /// the same id (after a timeout or an unclear error) never applies it twice. Default: a
        /// new id, printed before the change is made.
        #[arg(long)]
        op_id: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
struct ImportRow {
    product_id: String,
    store_id: Option<String>,
    name: String,
    stock: u64,
    #[serde(default)]
    payment_links: LinksField,
    // Merchandising: with `unit_amount`, the row is the product's source of truth and the
    // catalog sync makes Stripe match it (product, price, a link per store).
    #[serde(default)]
    unit_amount: Option<u64>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    images: LinksField,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    metadata: MetadataField,
}

#[derive(Debug, Deserialize, Default)]
#[serde(untagged)]
enum MetadataField {
    #[default]
    None,
    Map(std::collections::BTreeMap<String, String>),
    Joined(String),
}

impl MetadataField {
    fn into_map(self) -> Result<std::collections::BTreeMap<String, String>> {
        match self {
            Self::None => Ok(Default::default()),
            Self::Map(m) => Ok(m),
            Self::Joined(s) => s
                .split(';')
                .filter(|kv| !kv.trim().is_empty())
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                        .with_context(|| format!("metadata {kv:?} is not key=value"))
                })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(untagged)]
enum LinksField {
    #[default]
    None,
    List(Vec<String>),
    Joined(String),
}

impl LinksField {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::None => Vec::new(),
            Self::List(v) => v,
            Self::Joined(s) => s
                .split([';', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

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
    payment_links: Vec<&'a str>,
    deactivated_links: Vec<&'a str>,
    updated_at: String,
    /// Orders paid before this moment never move the stock (`null`: no boundary, an item
    /// stored before stockbridge kept one; a `stock set` gives it one).
    managed_since: Option<String>,
}

fn view(i: &CatalogItem) -> ItemView<'_> {
    ItemView {
        product_id: i.product_id.as_str(),
        store_id: i.store_id.as_str(),
        name: &i.name,
        available: i.available,
        held: i.held,
        on_hand: i.on_hand(),
        version: i.version,
        sold_out: i.available == 0,
        payment_links: i.payment_links.iter().map(PaymentLinkId::as_str).collect(),
        deactivated_links: i
            .deactivated_links
            .iter()
            .map(PaymentLinkId::as_str)
            .collect(),
        updated_at: rfc3339(i.updated_at),
        managed_since: (i.managed_since.0 > 0).then(|| rfc3339(i.managed_since)),
    }
}

fn store_id(config: &Config, store: Option<String>) -> Result<StoreId> {
    match store {
        Some(s) => StoreId::parse(s).context("--store"),
        None => Ok(config.default_store.clone()),
    }
}

fn read_rows(path: &Path) -> Result<Vec<ImportRow>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if text.trim_start().starts_with('[') {
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a JSON array of catalog items", path.display()))
    } else {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        reader
            .deserialize()
            .enumerate()
            .map(|(i, r)| r.with_context(|| format!("{}: CSV row {}", path.display(), i + 2)))
            .collect()
    }
}

async fn import(config: &Config, path: &Path, set_stock: bool) -> Result<()> {
    let rows = read_rows(path)?;
    let inventory = stockbridge_bootstrap::inventory(config).await?;
    let catalog = stockbridge_bootstrap::store(config).await;
    let (mut created, mut updated, mut kept, mut details_changed) = (0, 0, 0, 0);
    for (i, row) in rows.into_iter().enumerate() {
        let at = |what: &str| format!("item {} ({}): {what}", i + 1, row.product_id);
        let item = ImportItem {
            product_id: ProductId::parse(row.product_id.clone())
                .with_context(|| at("product_id"))?,
            store_id: match row.store_id.clone().filter(|s| !s.is_empty()) {
                Some(s) => StoreId::parse(s).with_context(|| at("store_id"))?,
                None => config.default_store.clone(),
            },
            name: row.name.clone(),
            stock: row.stock,
            payment_links: match row.payment_links.into_vec() {
                // An empty cell keeps the item's links (e.g. the ones the catalog sync made).
                v if v.is_empty() => None,
                v => Some(
                    v.into_iter()
                        .map(PaymentLinkId::parse)
                        .collect::<Result<Vec<_>, _>>()
                        .with_context(|| at("payment_links"))?,
                ),
            },
        };
        // Validated before anything is written; written after the stock record exists, so the
        // sync finds the store's item to put the link on.
        let details = match row.unit_amount {
            None => None,
            Some(amount) => Some(DetailsInput {
                product_id: item.product_id.clone(),
                store_id: item.store_id.clone(),
                name: item.name.clone(),
                description: row.description,
                images: row.images.into_vec(),
                price: Money::new(amount, row.currency.as_deref().unwrap_or("usd"))
                    .with_context(|| at("currency"))?,
                active: row.active.unwrap_or(true),
                metadata: row.metadata.into_map().with_context(|| at("metadata"))?,
            }),
        };
        if let Some(d) = &details {
            d.validate().with_context(|| at("details"))?;
        }
        match inventory
            .import_item(&item, set_stock, "catalog import")
            .await
            .with_context(|| at("import"))?
        {
            Imported::Created => created += 1,
            Imported::Updated => updated += 1,
            Imported::StockKept { current, file } => {
                kept += 1;
                eprintln!(
                    "{} in {}: stock left at {current} (the file says {file}; orders move stock after a file is written — pass --set-stock to overwrite, or use `stockbridge stock set`)",
                    item.product_id, item.store_id
                );
            }
        }
        if let Some(input) = &details {
            match put_details(&catalog, &SystemClock, input)
                .await
                .with_context(|| at("details"))?
            {
                DetailsChange::Created | DetailsChange::Changed(_) => details_changed += 1,
                DetailsChange::Unchanged => {}
            }
        }
    }
    println!(
        "imported {}: {created} created, {updated} updated, {kept} with stock left as is; {details_changed} products' details changed (synced to Stripe by catalog-sync)",
        path.display()
    );
    Ok(())
}

/// A yes/no option, spelled like the template's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum YesNo {
    Yes,
    No,
}

async fn run(cli: Cli) -> Result<()> {
    // Before a deploy there is no table yet.
    if let Command::Preflight {
        reserve_concurrency,
        json,
    } = cli.command
    {
        let options = preflight::Options {
            reserve_concurrency: reserve_concurrency == YesNo::Yes,
            json,
        };
        return preflight::run(&options).await;
    }
    let config = Config::from_env()?;
    match cli.command {
        Command::Table {
            command: TableCommand::Create,
        } => {
            let store = stockbridge_bootstrap::store(&config).await;
            let created = store
                .create_table()
                .await
                .with_context(|| format!("creating table {}", config.table_name))?;
            println!(
                "table {} {}",
                config.table_name,
                if created { "created" } else { "already exists" }
            );
        }
        Command::Catalog {
            command: CatalogCommand::Import { file, set_stock },
        } => import(&config, &file, set_stock).await?,
        Command::Catalog {
            command: CatalogCommand::Export { store, out },
        } => {
            let store = store_id(&config, store)?;
            let adapters = stockbridge_bootstrap::adapters(&config).await?;
            let doc = export_catalog(
                &adapters.store,
                &adapters.payments,
                &store,
                &config.topic_prefix,
                SystemClock.now(),
            )
            .await?;
            let json = serde_json::to_string_pretty(&doc)?;
            match out {
                Some(path) => std::fs::write(&path, json + "\n")
                    .with_context(|| format!("writing {}", path.display()))?,
                None => println!("{json}"),
            }
        }
        Command::Stock {
            command:
                StockCommand::Show {
                    product,
                    store,
                    json,
                },
        } => {
            let (s, p) = (
                store_id(&config, store)?,
                ProductId::parse(product).context("PRODUCT")?,
            );
            let db = stockbridge_bootstrap::store(&config).await;
            let Some(item) = db.item(&s, &p).await? else {
                bail!(
                    "product {p} is not in the catalog of store {s}; import it with `stockbridge catalog import FILE`"
                );
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&view(&item))?);
            } else {
                let state = if item.available == 0 {
                    " (sold out)"
                } else {
                    ""
                };
                println!(
                    "{} {} in {}: {} available{state}, {} held, {} on hand, version {}",
                    item.product_id,
                    item.name,
                    item.store_id,
                    item.available,
                    item.held,
                    item.on_hand(),
                    item.version
                );
            }
        }
        Command::Stock {
            command:
                StockCommand::Set {
                    product,
                    units,
                    store,
                    expect_version,
                    recount,
                    op_id,
                },
        } => {
            change(
                &config,
                store,
                product,
                if recount {
                    StockChange::Recount(units)
                } else {
                    StockChange::Set(units)
                },
                expect_version,
                op_id,
            )
            .await?;
        }
        Command::Stock {
            command:
                StockCommand::Held {
                    store,
                    repair,
                    json,
                },
        } => {
            let store = store_id(&config, store)?;
            let inventory = stockbridge_bootstrap::inventory(&config).await?;
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
        }
        Command::Stock {
            command:
                StockCommand::Adjust {
                    product,
                    delta,
                    store,
                    expect_version,
                    op_id,
                },
        } => {
            change(
                &config,
                store,
                product,
                StockChange::Adjust(delta),
                expect_version,
                op_id,
            )
            .await?;
        }
        Command::Reconcile {
            max_events,
            event_overlap_secs,
            dry_run,
            store,
            session_hours,
            session_grace_secs,
            catalog_segments,
            notify,
            json,
        } => {
            let store = store.map(StoreId::parse).transpose().context("--store")?;
            ops::reconcile(
                &config,
                ops::ReconcileArgs {
                    max_events,
                    event_overlap_secs,
                    dry_run,
                    store,
                    session_hours,
                    session_grace_secs,
                    catalog_segments,
                    notify,
                    json,
                },
            )
            .await?;
        }
        Command::Backfill {
            store,
            default_stock,
            restart,
        } => {
            let store = store_id(&config, store)?;
            ops::backfill(
                &config,
                stockbridge_app::backfill::BackfillOptions {
                    store,
                    default_stock,
                    restart,
                },
            )
            .await?;
        }
        Command::Status { json } => ops::status(&config, json).await?,
        Command::Migrate { dry_run, json } => migrate(&config, dry_run, json).await?,
        Command::Preflight { .. } => bail!("preflight runs before the configuration is read"),
        Command::Pause { what } => switches::set(&config, what, true).await?,
        Command::Resume { what } => switches::set(&config, what, false).await?,
        Command::Parked { command, json } => {
            let action = match command {
                ParkedCommand::List => parked::Action::List,
                ParkedCommand::Retry { id } => parked::Action::Retry(id),
                ParkedCommand::Skip { id } => parked::Action::Skip(id),
            };
            parked::run(&config, action, json).await?;
        }
        Command::History {
            product,
            store,
            json,
        } => history(&config, store, product, json).await?,
    }
    Ok(())
}

async fn migrate(config: &Config, dry_run: bool, json: bool) -> Result<()> {
    let store = stockbridge_bootstrap::store(config).await;
    let r = store
        .migrate(dry_run)
        .await
        .context("migrating the table")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let verb = if dry_run { "would set" } else { "set" };
    if r.unreadable > 0 {
        println!(
            "{} records could not be read and were left as they are (see the warnings above)",
            r.unreadable
        );
    }
    let meanwhile = if r.changed_meanwhile > 0 {
        format!(
            "; {} changed meanwhile and were left to the functions",
            r.changed_meanwhile
        )
    } else {
        String::new()
    };
    println!(
        "{} records read; {verb} the expiry of {} records{meanwhile}",
        r.scanned, r.expiries_set
    );
    if config.retention.is_none() {
        println!("RETENTION_DAYS is not set: no expiry set, closed records are kept for good");
    }
    Ok(())
}

async fn change(
    config: &Config,
    store: Option<String>,
    product: String,
    change: StockChange,
    expect: Option<u64>,
    op_id: Option<String>,
) -> Result<()> {
    let (s, p) = (
        store_id(config, store)?,
        ProductId::parse(product).context("PRODUCT")?,
    );
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

async fn history(
    config: &Config,
    store: Option<String>,
    product: String,
    json: bool,
) -> Result<()> {
    let (s, p) = (
        store_id(config, store)?,
        ProductId::parse(product).context("PRODUCT")?,
    );
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
        println!(
            "  {} {} ({}){refund}",
            o.order_id,
            o.status.as_str(),
            o.payment.as_str()
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("STOCKBRIDGE_LOG"))
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Library errors already carry their cause in their message: print each cause once.
            let mut parts: Vec<String> = Vec::new();
            for cause in e.chain().map(ToString::to_string) {
                if !parts.last().is_some_and(|prev| prev.contains(&cause)) {
                    parts.push(cause);
                }
            }
            eprintln!("error: {}", parts.join(": "));
            std::process::ExitCode::FAILURE
        }
    }
}

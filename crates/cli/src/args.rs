//! The command line as clap parses it: every command, its arguments and their help.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands::{store, switches};

#[derive(Parser)]
#[command(
    name = "stockbridge",
    version,
    about = "Real-time inventory on top of Stripe"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    Reconcile(ReconcileArgs),
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
        /// The stack has a webhook endpoint (StripeWebhookSecretArn): its reserved concurrency
        /// (WebhookReservedConcurrency, 20) counts, and a webhook destination may stand in for
        /// the EventBridge one.
        #[arg(long)]
        webhook: bool,
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
    /// A store's settings.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// The back-in-stock waitlist (docs/waitlist.md).
    Waitlist {
        #[command(subcommand)]
        command: WaitlistCommand,
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
pub enum WaitlistCommand {
    /// The confirmed addresses waiting for a product's next restock.
    List {
        /// Product id (the Stripe product id).
        product: String,
        /// Store id (default: DEFAULT_STORE_ID).
        #[arg(long)]
        store: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Announce the restocks left pending (a failed announcement: the broadcaster's
    /// WaitlistAnnouncementsFailed alarm).
    Announce {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Erase an e-mail address from every list of every store, on its owner's request.
    Erase {
        /// The address (any case).
        email: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Whether the merchant's refunds in full and lost disputes return an order's units to
    /// stock (both off by default: refunded goods may not come back). Shows the setting; with
    /// a flag, changes it first.
    Returns {
        /// Store id (default: DEFAULT_STORE_ID).
        #[arg(long)]
        store: Option<String>,
        /// A refund in full of a fulfilled order returns its units.
        #[arg(long, value_enum)]
        refunds: Option<store::OnOff>,
        /// A lost dispute over a fulfilled order returns its units.
        #[arg(long, value_enum)]
        lost_disputes: Option<store::OnOff>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ParkedCommand {
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
pub enum TableCommand {
    /// Create the table if it does not exist (local and first-time use; SAM creates it in AWS).
    Create,
}

#[derive(Subcommand)]
pub enum CatalogCommand {
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
pub enum StockCommand {
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
        /// Alert (`stockbridge.low_stock`, published by the broadcaster) when what can be sold
        /// falls to this many units or fewer, once per crossing; `0` turns the alert off.
        /// Kept until changed.
        #[arg(long)]
        low_stock: Option<u64>,
    },
    /// Spread a very hot product's units over K shard items, so that its orders write K
    /// partitions instead of one (docs/sharded-stock.md); `--shards 1` collects them back.
    Shard {
        /// Product id.
        product: String,
        /// Store id (default: DEFAULT_STORE_ID).
        #[arg(long)]
        store: Option<String>,
        /// How many shard items (2 to 24; 1 collects the units back into the item).
        #[arg(long)]
        shards: u16,
    },
    /// Publish items' levels as stored now, to their stock topics (the repair when levels did
    /// not reach storefronts: the broadcaster's failed-batches queue, an IoT outage).
    Publish {
        /// Product id (default: every item of the store).
        product: Option<String>,
        /// Store id (default: DEFAULT_STORE_ID).
        #[arg(long)]
        store: Option<String>,
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

/// A yes/no option, spelled like the template's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum YesNo {
    Yes,
    No,
}

/// `stockbridge reconcile`.
#[derive(clap::Args)]
pub struct ReconcileArgs {
    /// Replay at most this many events (the next run continues from the cursor).
    #[arg(long, default_value_t = 1000)]
    pub max_events: usize,
    /// Re-list this many seconds before the cursor (`/v1/events` can show an event after a
    /// newer one).
    #[arg(long, default_value_t = stockbridge_app::reconcile::recovery::DEFAULT_OVERLAP_SECS)]
    pub event_overlap_secs: u32,
    /// Only report: replay no event and repair nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Check only this store's catalog (default: every store).
    #[arg(long)]
    pub store: Option<String>,
    /// Check that every paid Checkout Session of the last H hours has an order (0: skip).
    #[arg(long, default_value_t = 24)]
    pub session_hours: u32,
    /// Leave sessions younger than this many seconds alone (their events may be on the way).
    #[arg(long, default_value_t = 600)]
    pub session_grace_secs: u32,
    /// Parallel scan segments of the catalog-against-Stripe check (0: skip it).
    #[arg(long, default_value_t = 4)]
    pub catalog_segments: u32,
    /// Also publish the `stockbridge.reconciliation` event (to RECONCILIATION_EVENT_BUS).
    #[arg(long)]
    pub notify: bool,
    /// Print JSON: `{"events", "links", "catalog", "summary"}`.
    #[arg(long)]
    pub json: bool,
}

//! Configuration from the environment and construction of the adapters, shared by the
//! `inventory` Lambda and the `stockbridge` CLI. Read once at start-up.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `TABLE_NAME` | DynamoDB table | required |
//! | `STRIPE_API_KEY` | Stripe secret/restricted key (local use) | — |
//! | `STRIPE_SECRET_ARN` | Secrets Manager secret holding the key (AWS) | — |
//! | `STRIPE_API_BASE` | Stripe API base URL | `https://api.stripe.com/` |
//! | `STRIPE_LIVEMODE` | `true` to accept live-mode events only | `false` |
//! | `STRIPE_EVENT_SOURCE_PREFIX` | accepted EventBridge `source` prefix | `aws.partner/stripe.com/` |
//! | `STRIPE_TIMEOUT_MS` | per-attempt Stripe timeout | `10000` |
//! | `STRIPE_MAX_RPS` | Stripe requests per second this process may make (token bucket) | `10` |
//! | `DEFAULT_STORE_ID` | store of sessions without `metadata.store_id` | `default` |
//! | `IOT_TOPIC_PREFIX` | stock topic prefix | `stockbridge` |
//!
//! AWS settings come from the SDK's standard variables (`AWS_REGION`,
//! `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_IOT_DATA_PLANE`, credentials).

use std::time::Duration;

mod failure;
pub use failure::Failure;

use secrecy::{ExposeSecret, SecretString};
use stockbridge_app::catalog::CatalogSync;
use stockbridge_app::events::EventFilter;
use stockbridge_app::inventory::{Inventory, InventoryConfig};
use stockbridge_app::ports::SystemClock;
use stockbridge_app::reconcile::{RunOptions, SessionWindow};
use stockbridge_domain::{IdError, StoreId};
use stockbridge_dynamodb::DynamoStore;
use stockbridge_eventbridge::EventBridgeNotifier;
use stockbridge_iot::IotPublisher;
use stockbridge_stripe::{RetryPolicy, StripeConfig, StripePayments};

/// Why the configuration is unusable. Each message names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is missing.
    #[error("{0} is not set: {1}")]
    Missing(&'static str, &'static str),
    /// A variable has an invalid value.
    #[error("{name} is invalid: {message}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The Stripe key could not be read from Secrets Manager.
    #[error("reading the Stripe key from Secrets Manager ({arn}) failed: {message}")]
    Secret {
        /// The secret's ARN.
        arn: String,
        /// What went wrong.
        message: String,
    },
}

/// Where the Stripe key comes from.
#[derive(Debug, Clone)]
pub enum StripeKeySource {
    /// `STRIPE_API_KEY` (local use).
    Env(SecretString),
    /// `STRIPE_SECRET_ARN` (AWS).
    SecretsManager(String),
}

/// The configuration of the binaries.
#[derive(Debug, Clone)]
pub struct Config {
    /// `TABLE_NAME`.
    pub table_name: String,
    /// Where the Stripe key is.
    pub stripe_key: Option<StripeKeySource>,
    /// `STRIPE_API_BASE`.
    pub stripe_api_base: Option<String>,
    /// `STRIPE_TIMEOUT_MS`.
    pub stripe_timeout: Duration,
    /// `STRIPE_MAX_RPS`.
    pub stripe_max_rps: f64,
    /// `STRIPE_BUDGET_RPS`: the whole deployment's Stripe requests a second, shared through
    /// the table (unset: this process's own `STRIPE_MAX_RPS` only).
    pub stripe_budget_rps: Option<f64>,
    /// `STRIPE_LIVEMODE`.
    pub livemode: bool,
    /// `STRIPE_EVENT_SOURCE_PREFIX`.
    pub source_prefix: String,
    /// `DEFAULT_STORE_ID`.
    pub default_store: StoreId,
    /// `IOT_TOPIC_PREFIX`.
    pub topic_prefix: String,
    /// `STOCK_LEVELS_FROM_STREAM`: the `broadcaster` Lambda publishes every level from the
    /// table's stream, so the functions that change stock publish none themselves (unset:
    /// each publishes the levels it commits).
    pub levels_from_stream: bool,
    /// `CATALOG_SYNC_DLQ_URL`: where the catalog-sync function sets aside a message that can
    /// never succeed, with its reason (unset: such a message stays for the queue's redrive).
    pub catalog_sync_dlq_url: Option<String>,
    /// `RETENTION_DAYS`: how long closed orders, ledger entries and the reconciler's findings
    /// are kept (unset or 0: for good; at least 35 otherwise).
    pub retention: Option<stockbridge_dynamodb::Retention>,
}

/// `RETENTION_DAYS` (unset: keep everything).
fn retention() -> Result<Option<stockbridge_dynamodb::Retention>, ConfigError> {
    let Some(v) = var("RETENTION_DAYS") else {
        return Ok(None);
    };
    let days = v.parse::<u32>().map_err(|_| ConfigError::Invalid {
        name: "RETENTION_DAYS",
        message: format!("{v:?} is not a number of days"),
    })?;
    stockbridge_dynamodb::Retention::days(days).map_err(|e| ConfigError::Invalid {
        name: "RETENTION_DAYS",
        message: e.to_string(),
    })
}

/// A true/false variable (unset: false).
fn flag(name: &'static str) -> Result<bool, ConfigError> {
    match var(name).as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(other) => Err(ConfigError::Invalid {
            name,
            message: format!("{other:?} is not true or false"),
        }),
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// Reads the configuration from the environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first missing or invalid variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let table_name = var("TABLE_NAME").ok_or(ConfigError::Missing(
            "TABLE_NAME",
            "set it to the DynamoDB table name",
        ))?;
        Self::from_env_with_table(table_name)
    }

    /// [`Self::from_env`] where `TABLE_NAME` may be unset (empty): `stockbridge preflight`
    /// before a deploy.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first invalid variable.
    pub fn from_env_without_table() -> Result<Self, ConfigError> {
        Self::from_env_with_table(var("TABLE_NAME").unwrap_or_default())
    }

    fn from_env_with_table(table_name: String) -> Result<Self, ConfigError> {
        let stripe_key = match (var("STRIPE_API_KEY"), var("STRIPE_SECRET_ARN")) {
            (Some(k), _) => Some(StripeKeySource::Env(SecretString::from(k))),
            (None, Some(arn)) => Some(StripeKeySource::SecretsManager(arn)),
            (None, None) => None,
        };
        let livemode = flag("STRIPE_LIVEMODE")?;
        let stripe_timeout = match var("STRIPE_TIMEOUT_MS") {
            None => Duration::from_secs(10),
            Some(v) => Duration::from_millis(v.parse().map_err(|_| ConfigError::Invalid {
                name: "STRIPE_TIMEOUT_MS",
                message: format!("{v:?} is not a number of milliseconds"),
            })?),
        };
        let stripe_max_rps = match var("STRIPE_MAX_RPS") {
            None => 10.0,
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite() && *r > 0.0 && *r <= 100.0)
                .ok_or_else(|| ConfigError::Invalid {
                    name: "STRIPE_MAX_RPS",
                    message: format!("{v:?} is not a rate between 0 and 100 requests per second"),
                })?,
        };
        let stripe_budget_rps = match var("STRIPE_BUDGET_RPS") {
            None => None,
            Some(v) => Some(
                v.parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r >= 1.0 && *r <= 1000.0)
                    .ok_or_else(|| ConfigError::Invalid {
                        name: "STRIPE_BUDGET_RPS",
                        message: format!(
                            "{v:?} is not a rate between 1 and 1000 requests per second"
                        ),
                    })?,
            ),
        };
        let default_store = StoreId::parse(
            var("DEFAULT_STORE_ID").unwrap_or_else(|| "default".into()),
        )
        .map_err(|e: IdError| ConfigError::Invalid {
            name: "DEFAULT_STORE_ID",
            message: e.to_string(),
        })?;
        let topic_prefix = var("IOT_TOPIC_PREFIX").unwrap_or_else(|| "stockbridge".into());
        if topic_prefix.contains(['+', '#'])
            || topic_prefix.starts_with('/')
            || topic_prefix.ends_with('/')
        {
            return Err(ConfigError::Invalid {
                name: "IOT_TOPIC_PREFIX",
                message: "must not contain + or # nor start or end with /".into(),
            });
        }
        Ok(Self {
            retention: retention()?,
            table_name,
            stripe_key,
            stripe_api_base: var("STRIPE_API_BASE"),
            stripe_timeout,
            stripe_max_rps,
            stripe_budget_rps,
            livemode,
            source_prefix: var("STRIPE_EVENT_SOURCE_PREFIX")
                .unwrap_or_else(|| "aws.partner/stripe.com/".into()),
            default_store,
            topic_prefix,
            levels_from_stream: flag("STOCK_LEVELS_FROM_STREAM")?,
            catalog_sync_dlq_url: var("CATALOG_SYNC_DLQ_URL"),
        })
    }
}

impl Config {
    /// Which Stripe events to accept (source prefix and mode).
    pub fn event_filter(&self) -> EventFilter {
        EventFilter {
            source_prefix: self.source_prefix.clone(),
            livemode: self.livemode,
        }
    }
}

/// The catalog sync wired to the real adapters.
pub type LiveCatalogSync = CatalogSync<DynamoStore, StripePayments, SystemClock>;

/// Builds the catalog sync use case from the configuration.
///
/// # Errors
/// [`ConfigError`].
pub async fn catalog_sync(config: &Config) -> Result<LiveCatalogSync, ConfigError> {
    Ok(catalog_sync_from(adapters(config).await?))
}

/// Builds the catalog sync use case from adapters already built.
pub fn catalog_sync_from(a: Adapters) -> LiveCatalogSync {
    CatalogSync {
        store: a.store,
        stripe: a.payments,
        clock: SystemClock,
    }
}

/// The inventory use case wired to the real adapters.
pub type LiveInventory = Inventory<DynamoStore, IotPublisher, StripePayments, SystemClock>;

/// The adapters, built once.
#[derive(Debug, Clone)]
pub struct Adapters {
    /// DynamoDB.
    pub store: DynamoStore,
    /// IoT Core.
    pub publisher: IotPublisher,
    /// Stripe.
    pub payments: StripePayments,
}

/// Loads the shared AWS configuration (standard variables and credential chain).
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_from_env().await
}

async fn stripe_key(
    source: &StripeKeySource,
    aws: &aws_config::SdkConfig,
) -> Result<SecretString, ConfigError> {
    match source {
        StripeKeySource::Env(k) => Ok(k.clone()),
        StripeKeySource::SecretsManager(arn) => {
            let secret_err = |message: String| ConfigError::Secret {
                arn: arn.clone(),
                message,
            };
            let client = aws_sdk_secretsmanager::Client::new(aws);
            let out = client
                .get_secret_value()
                .secret_id(arn)
                .send()
                .await
                .map_err(|e| {
                    secret_err(aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())
                })?;
            let raw = out
                .secret_string()
                .ok_or_else(|| secret_err("the secret has no string value".into()))?;
            // Either the raw key, or JSON {"api_key": "..."}.
            let key = if raw.trim_start().starts_with('{') {
                serde_json::from_str::<serde_json::Value>(raw)
                    .ok()
                    .and_then(|v| v.get("api_key").and_then(|k| k.as_str()).map(str::to_owned))
                    .ok_or_else(|| {
                        secret_err("the JSON secret has no string field api_key".into())
                    })?
            } else {
                raw.trim().to_owned()
            };
            Ok(SecretString::from(key))
        }
    }
}

/// Builds only the DynamoDB store (for commands that need no Stripe key).
pub async fn store(config: &Config) -> DynamoStore {
    DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws_config().await),
        &config.table_name,
    )
    .with_retention(config.retention)
}

/// The catalog-sync function's dead-letter queue (`CATALOG_SYNC_DLQ_URL`).
pub async fn dead_letters(config: &Config) -> stockbridge_sqs::SqsDeadLetters {
    stockbridge_sqs::SqsDeadLetters::new(
        aws_sdk_sqs::Client::new(&aws_config().await),
        config.catalog_sync_dlq_url.clone(),
    )
}

/// The `broadcaster` Lambda's adapters: the table and a publisher that always publishes (it is
/// the one publisher when `STOCK_LEVELS_FROM_STREAM` is set). No Stripe key.
pub async fn broadcaster(config: &Config) -> (DynamoStore, IotPublisher) {
    let aws = aws_config().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.table_name)
        .with_retention(config.retention);
    let publisher = IotPublisher::new(
        aws_sdk_iotdataplane::Client::new(&aws),
        &config.topic_prefix,
    );
    (store, publisher)
}

/// What kind of Stripe key the configuration holds (never the key itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyKind {
    /// `rk_`: a restricted key.
    pub restricted: bool,
    /// `_live_`: a live-mode key.
    pub live: bool,
}

/// Builds the Stripe client alone, without the shared budget (`stockbridge preflight`), and
/// says what kind of key it uses.
///
/// # Errors
/// [`ConfigError`] when the Stripe key is missing or unreadable.
pub async fn payments(config: &Config) -> Result<(StripePayments, KeyKind), ConfigError> {
    let source = config.stripe_key.as_ref().ok_or(ConfigError::Missing(
        "STRIPE_API_KEY",
        "set STRIPE_API_KEY (local) or STRIPE_SECRET_ARN (AWS)",
    ))?;
    let key = stripe_key(source, &aws_config().await).await?;
    let kind = KeyKind {
        restricted: key.expose_secret().starts_with("rk_"),
        live: key.expose_secret().contains("_live_"),
    };
    let config = Config {
        stripe_budget_rps: None,
        ..config.clone()
    };
    Ok((adapters(&config).await?.payments, kind))
}

/// Builds every adapter from the configuration.
///
/// # Errors
/// [`ConfigError`] when the Stripe key is missing or unreadable.
pub async fn adapters(config: &Config) -> Result<Adapters, ConfigError> {
    let aws = aws_config().await;
    let source = config.stripe_key.as_ref().ok_or(ConfigError::Missing(
        "STRIPE_API_KEY",
        "set STRIPE_API_KEY (local) or STRIPE_SECRET_ARN (AWS)",
    ))?;
    let api_key = stripe_key(source, &aws).await?;
    if !api_key.expose_secret().starts_with("sk_") && !api_key.expose_secret().starts_with("rk_") {
        return Err(ConfigError::Invalid {
            name: "STRIPE_API_KEY",
            message: "does not look like a Stripe secret or restricted key (sk_… or rk_…)".into(),
        });
    }
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.table_name)
        .with_retention(config.retention);
    let budget = config
        .stripe_budget_rps
        .map(|rps| stockbridge_stripe::budget::Budget::new(store.clone(), rps));
    let payments = StripePayments::new(&StripeConfig {
        budget,
        timeout: config.stripe_timeout,
        retry: RetryPolicy::default(),
        max_rps: config.stripe_max_rps,
        burst: config.stripe_max_rps.ceil().clamp(1.0, 100.0) as u32,
        ..StripeConfig::new(api_key, config.stripe_api_base.clone())
    })
    .map_err(|e| ConfigError::Invalid {
        name: "STRIPE_API_BASE",
        message: e.to_string(),
    })?;
    Ok(Adapters {
        store,
        publisher: IotPublisher::new(
            aws_sdk_iotdataplane::Client::new(&aws),
            &config.topic_prefix,
        )
        .publishing(!config.levels_from_stream),
        payments,
    })
}

/// Builds the inventory use case from the configuration.
///
/// # Errors
/// [`ConfigError`].
pub async fn inventory(config: &Config) -> Result<LiveInventory, ConfigError> {
    Ok(inventory_from(adapters(config).await?, config))
}

/// Builds the inventory use case from adapters already built.
pub fn inventory_from(a: Adapters, config: &Config) -> LiveInventory {
    Inventory::new(
        a.store,
        a.publisher,
        a.payments,
        SystemClock,
        InventoryConfig {
            filter: config.event_filter(),
            default_store: config.default_store.clone(),
            max_attempts: 50,
        },
    )
}

/// The reconciler's settings, from the environment.
#[derive(Debug, Clone)]
pub struct ReconcilerSettings {
    /// `RECONCILER_MAX_EVENTS`: events replayed per run at most (default 1000; the next run
    /// continues from the cursor).
    pub max_events: usize,
    /// `RECONCILER_EVENT_OVERLAP_SECS`: seconds re-listed before the replay cursor, for events
    /// that become visible in `/v1/events` after newer ones (default 60).
    pub event_overlap_secs: u32,
    /// `RECONCILER_SESSION_HOURS`: paid sessions of the last hours that must have an order
    /// (default 24; 0 skips the check).
    pub session_hours: u32,
    /// `RECONCILER_SESSION_GRACE_SECS`: sessions younger than this are left to their events
    /// (default 600).
    pub session_grace_secs: u32,
    /// `RECONCILER_CATALOG_SEGMENTS`: parallel scan segments of the catalog check (default 4;
    /// 0 skips it).
    pub catalog_segments: u32,
    /// `RECONCILER_CATALOG_MAX_PAGES`: Stripe list requests of the catalog check per run
    /// (default 1500: 150,000 products; a bigger catalog is checked over several runs).
    pub catalog_max_pages: usize,
    /// `RECONCILIATION_EVENT_BUS`: where the summary event goes (default `default`).
    pub event_bus: String,
    /// `STOCKBRIDGE_REPAIRS=report`: every repair is computed, recorded and alarmed on, none is
    /// carried out (default `act`). See [`report_only`].
    pub report_only: bool,
}

/// `STOCKBRIDGE_REPAIRS`: `act` (default) or `report` — the safe way to connect an account
/// that sold before stockbridge: the reconciler replays nothing and repairs nothing, but
/// records (and alarms on) everything it would have done.
///
/// # Errors
/// [`ConfigError::Invalid`] for any other value.
pub fn report_only() -> Result<bool, ConfigError> {
    match var("STOCKBRIDGE_REPAIRS").as_deref().map(str::trim) {
        None | Some("act") => Ok(false),
        Some("report") => Ok(true),
        Some(other) => Err(ConfigError::Invalid {
            name: "STOCKBRIDGE_REPAIRS",
            message: format!("{other:?} is neither \"act\" nor \"report\""),
        }),
    }
}

fn number<T: std::str::FromStr + PartialOrd + Copy>(
    name: &'static str,
    default: T,
    min: T,
) -> Result<T, ConfigError> {
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| *n >= min)
            .ok_or(ConfigError::Invalid {
                name,
                message: format!("{v:?} is not a number (at least the minimum allowed)"),
            }),
    }
}

/// `hours` of paid sessions to check, held within the retention: a session older than the
/// orders the table keeps would find no order and be applied again.
pub fn within_retention(hours: u32, retention: Option<stockbridge_dynamodb::Retention>) -> u32 {
    match retention {
        Some(r) if hours > r.max_lookback_hours() => {
            tracing::warn!(
                hours,
                max = r.max_lookback_hours(),
                "the session check would reach past the orders the table keeps (RETENTION_DAYS): shortened"
            );
            r.max_lookback_hours()
        }
        _ => hours,
    }
}

impl ReconcilerSettings {
    /// Reads them.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            max_events: number("RECONCILER_MAX_EVENTS", 1000, 1)?,
            event_overlap_secs: number(
                "RECONCILER_EVENT_OVERLAP_SECS",
                stockbridge_app::recovery::DEFAULT_OVERLAP_SECS,
                0,
            )?,
            session_hours: within_retention(
                number("RECONCILER_SESSION_HOURS", 24, 0)?,
                retention()?,
            ),
            session_grace_secs: number("RECONCILER_SESSION_GRACE_SECS", 600, 0)?,
            catalog_segments: number("RECONCILER_CATALOG_SEGMENTS", 4, 0)?,
            catalog_max_pages: number("RECONCILER_CATALOG_MAX_PAGES", 1500, 0)?,
            event_bus: var("RECONCILIATION_EVENT_BUS").unwrap_or_else(|| "default".into()),
            report_only: report_only()?,
        })
    }

    /// The run options they give at `now` (every store; repairs on unless
    /// `STOCKBRIDGE_REPAIRS=report`), the run's time shared out until `deadline`.
    pub fn options(
        &self,
        now: stockbridge_domain::Timestamp,
        deadline: Option<std::time::Instant>,
    ) -> RunOptions {
        RunOptions {
            store: None,
            dry_run: self.report_only,
            max_events: self.max_events,
            event_overlap_secs: self.event_overlap_secs,
            sessions: SessionWindow::last_hours(now, self.session_hours, self.session_grace_secs),
            catalog_segments: self.catalog_segments,
            catalog_grace_ms: i64::from(self.session_grace_secs) * 1000,
            catalog_max_pages: self.catalog_max_pages,
            budget: deadline.map_or_else(
                stockbridge_app::reconcile::Budget::unlimited,
                stockbridge_app::reconcile::Budget::until,
            ),
            found_before: Vec::new(),
        }
    }
}

/// The checkout function's settings, from the environment.
#[derive(Debug, Clone)]
pub struct CheckoutSettings {
    /// `CHECKOUT_MAX_QUANTITY` (10), `CHECKOUT_MAX_LINES` (20), `CHECKOUT_HOLD_SECONDS` (900),
    /// `CHECKOUT_MAX_UNITS` (10), `CHECKOUT_HOLD_SHARE_PERCENT` (50, at most 100),
    /// `CHECKOUT_HOLDS_PER_EMAIL` (3), `CHECKOUT_HOLDS_PER_CLIENT` (300),
    /// `CHECKOUT_FAILURES_PER_HOUR` (5), `CHECKOUT_FAILURES_PER_CLIENT_HOUR` (50),
    /// `CHECKOUT_UNITS_PER_EMAIL` (0: none), `CHECKOUT_EMAIL_LIMIT_SECONDS` (86400): see
    /// docs/checkout.md, *Caps*.
    pub limits: stockbridge_app::holds::CheckoutLimits,
    /// `CHECKOUT_ALLOWED_ORIGINS`: comma-separated origins allowed to call it from a browser,
    /// or `*`. Default none: browsers send `Origin` on every POST, so an empty list refuses
    /// every browser call; calls without `Origin` (servers, curl) are always served.
    pub allowed_origins: Vec<String>,
    /// `CHECKOUT_MAX_BODY_BYTES` (16384).
    pub max_body_bytes: usize,
}

impl CheckoutSettings {
    /// Reads them.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            limits: stockbridge_app::holds::CheckoutLimits {
                max_quantity: number("CHECKOUT_MAX_QUANTITY", 10, 1)?,
                max_lines: number("CHECKOUT_MAX_LINES", 20, 1)?,
                hold_seconds: number("CHECKOUT_HOLD_SECONDS", 900, 10)?,
                max_units: number("CHECKOUT_MAX_UNITS", 10, 1)?,
                hold_share_percent: match number("CHECKOUT_HOLD_SHARE_PERCENT", 50u8, 1)? {
                    p if p <= 100 => p,
                    p => {
                        return Err(ConfigError::Invalid {
                            name: "CHECKOUT_HOLD_SHARE_PERCENT",
                            message: format!("{p} is above 100"),
                        });
                    }
                },
                holds_per_email: number("CHECKOUT_HOLDS_PER_EMAIL", 3, 1)?,
                holds_per_client: number("CHECKOUT_HOLDS_PER_CLIENT", 300, 1)?,
                failures_per_hour: number("CHECKOUT_FAILURES_PER_HOUR", 5, 1)?,
                failures_per_client_hour: number("CHECKOUT_FAILURES_PER_CLIENT_HOUR", 50, 1)?,
                units_per_email: number("CHECKOUT_UNITS_PER_EMAIL", 0, 0)?,
                email_limit_seconds: number("CHECKOUT_EMAIL_LIMIT_SECONDS", 86_400, 60)?,
            },
            allowed_origins: var("CHECKOUT_ALLOWED_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(|o| o.trim().trim_end_matches('/').to_owned())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            max_body_bytes: number("CHECKOUT_MAX_BODY_BYTES", 16_384, 256)?,
        })
    }
}

/// The EventBridge notifier on the configured bus.
pub async fn notifier(settings: &ReconcilerSettings) -> EventBridgeNotifier {
    EventBridgeNotifier::new(
        aws_sdk_eventbridge::Client::new(&aws_config().await),
        &settings.event_bus,
    )
}

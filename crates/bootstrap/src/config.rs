//! [`Config`]: the variables every binary reads, checked once at start-up.

use super::*;

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
pub(crate) fn retention() -> Result<Option<stockbridge_dynamodb::Retention>, ConfigError> {
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
pub(crate) fn flag(name: &'static str) -> Result<bool, ConfigError> {
    match var(name).as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(other) => Err(ConfigError::Invalid {
            name,
            message: format!("{other:?} is not true or false"),
        }),
    }
}

pub(crate) fn var(name: &str) -> Option<String> {
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

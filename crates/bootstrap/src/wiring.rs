//! The adapters, built once from the [`Config`], and the use cases wired to them.

use super::*;

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
pub type LiveInventory = Services<DynamoStore, IotPublisher, StripePayments, SystemClock>;

/// The adapters, built once.
#[derive(Debug, Clone)]
pub struct Adapters {
    /// DynamoDB.
    pub store: DynamoStore,
    /// IoT Core.
    pub publisher: IotPublisher,
    /// Stripe.
    pub payments: StripePayments,
    /// The merchant's events (`stockbridge.order_refunded`) on `MERCHANT_EVENT_BUS`; `None`
    /// when it is not set (the CLI without it publishes none).
    pub events: Option<EventBridgeNotifier>,
}

/// Loads the shared AWS configuration (standard variables and credential chain).
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_from_env().await
}

pub(crate) async fn stripe_key(
    source: &StripeKeySource,
    aws: &aws_config::SdkConfig,
) -> Result<SecretString, ConfigError> {
    match source {
        StripeKeySource::Env(k) => Ok(k.clone()),
        StripeKeySource::SecretsManager(arn) => {
            let raw = secret_text(arn, aws).await?;
            // Either the raw key, or JSON {"api_key": "..."}.
            let key = if raw.trim_start().starts_with('{') {
                serde_json::from_str::<serde_json::Value>(&raw)
                    .ok()
                    .and_then(|v| v.get("api_key").and_then(|k| k.as_str()).map(str::to_owned))
                    .ok_or_else(|| ConfigError::Secret {
                        arn: arn.clone(),
                        message: "the JSON secret has no string field api_key".into(),
                    })?
            } else {
                raw.trim().to_owned()
            };
            Ok(SecretString::from(key))
        }
    }
}

/// A Secrets Manager secret's string value.
pub(crate) async fn secret_text(
    arn: &str,
    aws: &aws_config::SdkConfig,
) -> Result<String, ConfigError> {
    let secret_err = |message: String| ConfigError::Secret {
        arn: arn.to_owned(),
        message,
    };
    let out = aws_sdk_secretsmanager::Client::new(aws)
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            secret_err(aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())
        })?;
    out.secret_string()
        .map(str::to_owned)
        .ok_or_else(|| secret_err("the secret has no string value".into()))
}

/// The catalog-sync queue at `CATALOG_SYNC_QUEUE_URL` (the CLI's retry of a parked webhook
/// event; unset, a catalog event's send fails and it stays parked).
pub async fn catalog_queue() -> stockbridge_sqs::SqsCatalogQueue {
    stockbridge_sqs::SqsCatalogQueue::new(
        aws_sdk_sqs::Client::new(&aws_config().await),
        var("CATALOG_SYNC_QUEUE_URL"),
    )
}

/// The `webhook` Lambda's use case, the catalog-sync queue it hands catalog events to, and the
/// endpoint's signing secrets as configured (text: the webhook crate reads the list), from one
/// AWS configuration (loaded once at start-up).
///
/// # Errors
/// [`ConfigError`] when the Stripe key or the signing secret is missing or unreadable.
pub async fn webhook_function(
    config: &Config,
    settings: &WebhookSettings,
) -> Result<
    (
        LiveInventory,
        stockbridge_sqs::SqsCatalogQueue,
        SecretString,
    ),
    ConfigError,
> {
    let aws = aws_config().await;
    let secrets = match &settings.secret {
        StripeKeySource::Env(s) => s.clone(),
        StripeKeySource::SecretsManager(arn) => SecretString::from(secret_text(arn, &aws).await?),
    };
    let inventory = inventory_from(adapters_with(config, &aws).await?, config);
    let queue = stockbridge_sqs::SqsCatalogQueue::new(
        aws_sdk_sqs::Client::new(&aws),
        settings.catalog_queue_url.clone(),
    );
    Ok((inventory, queue, secrets))
}

/// The table, with the configured retention.
fn table(aws: &aws_config::SdkConfig, config: &Config) -> DynamoStore {
    DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), &config.table_name)
        .with_retention(config.retention)
}

/// A publisher on the configured topic prefix (publishing, until told otherwise).
fn iot(aws: &aws_config::SdkConfig, config: &Config) -> IotPublisher {
    IotPublisher::new(aws_sdk_iotdataplane::Client::new(aws), &config.topic_prefix)
}

/// Builds only the DynamoDB store (for commands that need no Stripe key).
pub async fn store(config: &Config) -> DynamoStore {
    table(&aws_config().await, config)
}

/// The catalog-sync function's dead-letter queue (`CATALOG_SYNC_DLQ_URL`).
fn dead_letters_with(
    config: &Config,
    aws: &aws_config::SdkConfig,
) -> stockbridge_sqs::SqsDeadLetters {
    stockbridge_sqs::SqsDeadLetters::new(
        aws_sdk_sqs::Client::new(aws),
        config.catalog_sync_dlq_url.clone(),
    )
}

/// The `catalog-sync` Lambda's use case and its dead-letter queue, from one AWS configuration
/// (loaded once at start-up).
///
/// # Errors
/// [`ConfigError`] when the Stripe key is missing or unreadable.
pub async fn catalog_sync_function(
    config: &Config,
) -> Result<(LiveCatalogSync, stockbridge_sqs::SqsDeadLetters), ConfigError> {
    let aws = aws_config().await;
    let sync = catalog_sync_from(adapters_with(config, &aws).await?);
    Ok((sync, dead_letters_with(config, &aws)))
}

/// The `broadcaster` Lambda's adapters: the table, a publisher that always publishes (it is
/// the one publisher when `STOCK_LEVELS_FROM_STREAM` is set) and the merchant's events on
/// `MERCHANT_EVENT_BUS` (default `default`). No Stripe key.
pub async fn broadcaster(config: &Config) -> (DynamoStore, IotPublisher, EventBridgeNotifier) {
    let aws = aws_config().await;
    let bus = var("MERCHANT_EVENT_BUS").unwrap_or_else(|| "default".into());
    let events = EventBridgeNotifier::new(aws_sdk_eventbridge::Client::new(&aws), bus);
    (table(&aws, config), iot(&aws, config), events)
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
    adapters_with(config, &aws_config().await).await
}

async fn adapters_with(
    config: &Config,
    aws: &aws_config::SdkConfig,
) -> Result<Adapters, ConfigError> {
    let source = config.stripe_key.as_ref().ok_or(ConfigError::Missing(
        "STRIPE_API_KEY",
        "set STRIPE_API_KEY (local) or STRIPE_SECRET_ARN (AWS)",
    ))?;
    let api_key = stripe_key(source, aws).await?;
    if !api_key.expose_secret().starts_with("sk_") && !api_key.expose_secret().starts_with("rk_") {
        return Err(ConfigError::Invalid {
            name: "STRIPE_API_KEY",
            message: "does not look like a Stripe secret or restricted key (sk_… or rk_…)".into(),
        });
    }
    let store = table(aws, config);
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
    let events = var("MERCHANT_EVENT_BUS")
        .map(|bus| EventBridgeNotifier::new(aws_sdk_eventbridge::Client::new(aws), bus));
    Ok(Adapters {
        store,
        publisher: iot(aws, config).publishing(!config.levels_from_stream),
        payments,
        events,
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
    let inventory = Services::new(
        a.store,
        a.publisher,
        a.payments,
        SystemClock,
        InventoryConfig {
            filter: config.event_filter(),
            default_store: config.default_store.clone(),
            max_attempts: 50,
        },
    );
    match a.events {
        Some(events) => inventory.with_merchant_events(events),
        None => inventory,
    }
}

/// The EventBridge notifier on the configured bus.
pub async fn notifier(settings: &ReconcilerSettings) -> EventBridgeNotifier {
    EventBridgeNotifier::new(
        aws_sdk_eventbridge::Client::new(&aws_config().await),
        &settings.event_bus,
    )
}

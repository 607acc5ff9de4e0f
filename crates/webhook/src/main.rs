//! The `webhook` Lambda behind a Function URL: Stripe's webhook deliveries for merchants without
//! an EventBridge event destination (or for what Stripe sends only to webhooks, such as
//! `v2.core.health.event_generation_failure.resolved`). Each delivery's `Stripe-Signature` is
//! checked before the body is read ([`signature`]); a genuine event, snapshot or thin, goes
//! through the same handlers as EventBridge's (`stockbridge_app::inbound`). All logic lives in
//! `stockbridge-app`; [`handler`] is the HTTP edge.

mod handler;
mod signature;

use lambda_runtime::{Error, service_fn};
use secrecy::ExposeSecret;
use stockbridge_bootstrap::{Config, WebhookSettings};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let settings = WebhookSettings::from_env()?;
    let (services, catalog, secrets) =
        stockbridge_bootstrap::webhook_function(&config, &settings).await?;
    let secrets = signature::Secrets::parse(secrets.expose_secret())?;
    let endpoint = handler::Endpoint {
        secrets: &secrets,
        catalog: &catalog,
        max_body_bytes: settings.max_body_bytes,
    };
    let (services, endpoint) = (&services, &endpoint);
    lambda_runtime::run(service_fn(move |event| {
        handler::handle(services, endpoint, event)
    }))
    .await
}

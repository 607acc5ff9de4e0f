//! The `checkout` Lambda behind a Function URL: `POST /checkout` with
//! `{store_id, items: [{product_id, quantity}], customer_email?}` and an `Idempotency-Key`
//! header. Holds every line (all or none) for `CHECKOUT_HOLD_SECONDS`, then creates a
//! PaymentIntent with `capture_method=manual` for the catalog's prices; answers
//! `{client_secret, hold_id, expires_at, amount, currency}`. 400 names the bad field, 409 says
//! what is available, 503 means retry with the same key. CORS for `CHECKOUT_ALLOWED_ORIGINS`.
//! All logic lives in `stockbridge-app` (`reservations`); this crate is the HTTP edge: [`http`]
//! (CORS, routing, answers) and [`handler`].

mod handler;
mod http;
mod waitlist;

use lambda_runtime::{Error, service_fn};
use stockbridge_bootstrap::{CheckoutSettings, Config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let settings = CheckoutSettings::from_env()?;
    if std::env::var("CHECKOUT_STRIPE_KEY_SHARED").is_ok_and(|v| v == "true") {
        // Least privilege: a public function should hold a key that can only make
        // PaymentIntents and switch links (docs/checkout.md, "Its own Stripe key").
        tracing::warn!(
            "the checkout runs on the main Stripe key: set CheckoutStripeSecretArn to a restricted key (PaymentIntents: Write, Payment Links: Write)"
        );
    }
    let inventory = stockbridge_bootstrap::inventory(&config).await?;
    // A waitlist that cannot be set up never stops the checkout: /waitlist then answers 404.
    let setup = stockbridge_bootstrap::waitlist().await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "the waitlist is not set up: /waitlist is off");
        None
    });
    let edge = setup.as_ref().map(|w| waitlist::WaitlistEdge {
        links: &w.links,
        limits: w.limits,
        events: &w.events,
    });
    let (inventory, settings) = (&inventory, &settings);
    lambda_runtime::run(service_fn(move |event| {
        handler::handle(inventory, settings, edge, event)
    }))
    .await
}

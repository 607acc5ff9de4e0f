//! Configuration from the environment and construction of the adapters, shared by the Lambdas
//! and the `stockbridge` CLI. Read once at start-up. Every variable read here is in the README's
//! configuration table (`tests/variables_in_readme.rs` holds it).
//!
//! - [`Config`] (`config.rs`): what every binary reads;
//! - `settings.rs`: the reconciler's and the checkout's own settings;
//! - `wiring.rs`: the adapters and the use cases built from them ([`LiveInventory`], ...).

use std::time::Duration;

mod config;
mod failure;
mod settings;
mod waitlist;
mod wiring;

pub use config::*;
pub use failure::Failure;
pub use settings::*;
pub use waitlist::*;
pub use wiring::*;

use secrecy::{ExposeSecret, SecretString};
use stockbridge_app::catalog_sync::CatalogSync;
use stockbridge_app::decode::EventFilter;
use stockbridge_app::orders::{InventoryConfig, Services};
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
    /// A secret (the Stripe key, the webhook's signing secret) could not be read from Secrets
    /// Manager.
    #[error("reading the secret {arn} from Secrets Manager failed: {message}")]
    Secret {
        /// The secret's ARN.
        arn: String,
        /// What went wrong.
        message: String,
    },
}

//! One module per group of commands; `main.rs` only dispatches to them.

pub mod catalog;
pub mod ops;
pub mod parked;
pub mod preflight;
pub mod stock;
pub mod store;
pub mod switches;
pub mod table;
pub mod waitlist;

use anyhow::{Context, Result};
use stockbridge_bootstrap::Config;
use stockbridge_domain::StoreId;

/// `--store`, or the configured default store.
pub fn store_id(config: &Config, store: Option<String>) -> Result<StoreId> {
    match store {
        Some(s) => StoreId::parse(s).context("--store"),
        None => Ok(config.default_store.clone()),
    }
}

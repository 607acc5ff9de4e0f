//! `stockbridge table create` and `stockbridge migrate`.

use anyhow::{Context, Result};
use stockbridge_bootstrap::Config;

/// `table create`: the table, its index and its TTL (a no-op when it exists).
pub async fn create(config: &Config) -> Result<()> {
    let store = stockbridge_bootstrap::store(config).await;
    let created = store
        .create_table()
        .await
        .with_context(|| format!("creating table {}", config.table_name))?;
    println!(
        "table {} {}",
        config.table_name,
        if created { "created" } else { "already exists" }
    );
    Ok(())
}

pub async fn migrate(config: &Config, dry_run: bool, json: bool) -> Result<()> {
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

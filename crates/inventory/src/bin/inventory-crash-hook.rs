//! `inventory` with a test-only fault, built only with `--features crash-hook` and never
//! deployed (the hook lives in this file alone, so the `inventory` binary cannot carry it):
//! `STOCKBRIDGE_FAULT=crash-after-commit` aborts the process right after a commit and before
//! any side effect, and `crash-after-take` right after a take and before its record
//! (`stockbridge_domain::take`), as a crash would, so the end-to-end tests can prove a
//! redelivery finishes the work.

use std::sync::Arc;

use stockbridge_bootstrap::LiveInventory;

const FAULT_VAR: &str = "STOCKBRIDGE_FAULT";

fn install(inventory: LiveInventory) -> LiveInventory {
    match std::env::var(FAULT_VAR).as_deref() {
        Ok("crash-after-commit") => {
            tracing::warn!(
                "{FAULT_VAR}=crash-after-commit: this process aborts after its first commit"
            );
            inventory.with_after_commit_hook(Arc::new(|| std::process::abort()))
        }
        Ok("crash-after-take") => {
            tracing::warn!(
                "{FAULT_VAR}=crash-after-take: this process aborts after its first take, before its record"
            );
            inventory.with_after_take_hook(Arc::new(|| std::process::abort()))
        }
        _ => inventory,
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    stockbridge_inventory::run_with(install).await
}

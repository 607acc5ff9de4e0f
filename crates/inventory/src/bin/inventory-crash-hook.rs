//! `inventory` with a test-only fault, built only with `--features crash-hook` and never
//! deployed (the hook lives in this file alone, so the `inventory` binary cannot carry it):
//! `STOCKBRIDGE_FAULT=crash-after-commit` aborts the process right after a commit and before
//! any side effect, as a crash would, so the end-to-end test can prove a redelivery finishes
//! the work.

use std::sync::Arc;

use stockbridge_bootstrap::LiveInventory;

const FAULT_VAR: &str = "STOCKBRIDGE_FAULT";

fn install(inventory: LiveInventory) -> LiveInventory {
    if std::env::var(FAULT_VAR).as_deref() != Ok("crash-after-commit") {
        return inventory;
    }
    tracing::warn!("{FAULT_VAR}=crash-after-commit: this process aborts after its first commit");
    inventory.with_after_commit_hook(Arc::new(|| std::process::abort()))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    stockbridge_inventory::run_with(install).await
}

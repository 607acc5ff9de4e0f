//! `inventory` with the test-only crash hook (`--features crash-hook`; never deployed):
//! `STOCKBRIDGE_FAULT=crash-after-commit` aborts right after a commit.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    stockbridge_inventory::run().await
}

//! The deployed `inventory` Lambda (see the library for what it does).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    stockbridge_inventory::run().await
}

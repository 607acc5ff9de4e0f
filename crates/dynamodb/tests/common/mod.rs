//! Shared by the adapter tests: a fresh table on the local DynamoDB API.

use stockbridge_dynamodb::DynamoStore;

/// A store on a new table of its own (created, and created again as a no-op).
pub async fn store() -> DynamoStore {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
        "AWS_ENDPOINT_URL_DYNAMODB is not set: run scripts/test"
    );
    let table = format!(
        "adapter-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let s = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws_config::load_from_env().await),
        table,
    );
    assert!(s.create_table().await.unwrap());
    assert!(
        !s.create_table().await.unwrap(),
        "creating twice is a no-op"
    );
    s
}

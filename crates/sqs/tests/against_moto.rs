//! The SQS adapter through the real AWS SDK to the local stack's SQS (moto): the message
//! arrives with its original body and its reason.

use aws_sdk_sqs::types::MessageSystemAttributeName;
use stockbridge_app::ports::{DeadLetterError, DeadLetters};
use stockbridge_sqs::SqsDeadLetters;

/// A new queue at the local stack's SQS: the client and its URL.
async fn queue(prefix: &str) -> (aws_sdk_sqs::Client, String) {
    std::env::var("AWS_ENDPOINT_URL_SQS")
        .expect("AWS_ENDPOINT_URL_SQS is not set: run scripts/test");
    let client = aws_sdk_sqs::Client::new(&aws_config::load_from_env().await);
    let name = format!("{prefix}-{}", std::process::id());
    let url = client
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (client, url)
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_poison_message_arrives_with_its_body_and_reason() {
    let (client, url) = queue("dead-letters").await;
    let dlq = SqsDeadLetters::new(client.clone(), Some(url.clone()));
    dlq.dead_letter("m-1", r#"{"bad": true}"#, "dynamodb.Keys: not a product")
        .await
        .unwrap();
    let got = client
        .receive_message()
        .queue_url(&url)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let [m] = got.messages() else {
        panic!("one message expected: {got:?}")
    };
    assert_eq!(m.body(), Some(r#"{"bad": true}"#));
    let attrs = m.message_attributes().unwrap();
    assert_eq!(
        attrs["reason"].string_value(),
        Some("dynamodb.Keys: not a product")
    );
    assert_eq!(attrs["source_message_id"].string_value(), Some("m-1"));
    client.delete_queue().queue_url(&url).send().await.unwrap();
}

#[tokio::test]
async fn without_a_queue_every_message_is_refused_so_it_stays_for_the_redrive() {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .build();
    let dlq = SqsDeadLetters::new(aws_sdk_sqs::Client::from_conf(config), None);
    let err = dlq.dead_letter("m-1", "{}", "bad").await.unwrap_err();
    assert!(matches!(err, DeadLetterError::NotConfigured), "{err}");
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_catalog_event_by_webhook_reaches_the_catalog_queue_as_it_came() {
    use stockbridge_app::ports::CatalogQueue;
    let (client, url) = queue("catalog").await;
    let body = r#"{"id":"evt_1","object":"event","type":"product.updated"}"#;
    stockbridge_sqs::SqsCatalogQueue::new(client.clone(), Some(url.clone()))
        .send(body)
        .await
        .unwrap();
    let got = client
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    let [m] = got.messages() else {
        panic!("one message expected: {got:?}")
    };
    assert_eq!(m.body(), Some(body));
    client.delete_queue().queue_url(&url).send().await.unwrap();
}

#[tokio::test]
async fn without_a_catalog_queue_a_send_fails_as_retryable() {
    use stockbridge_app::ports::CatalogQueue;
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .build();
    let queue = stockbridge_sqs::SqsCatalogQueue::new(aws_sdk_sqs::Client::from_conf(config), None);
    let err = queue.send("{}").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

//! The IoT adapter through the real AWS SDK to the local data-plane bridge, which publishes to
//! mosquitto. Asserts on what the bridge forwarded (the e2e tests read it back over MQTT).

use serde_json::Value;
use stockbridge_app::ports::StockPublisher;
use stockbridge_domain::{ProductId, StockLevel, StoreId, Timestamp};
use stockbridge_iot::IotPublisher;

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_level_is_published_retained_with_qos_1_on_the_documented_topic_and_a_503_is_retryable() {
    let bridge = std::env::var("STOCKBRIDGE_IOT_BRIDGE_URL")
        .expect("STOCKBRIDGE_IOT_BRIDGE_URL is not set: run scripts/test");
    let store = format!("iot{}", std::process::id());
    let p = IotPublisher::new(
        aws_sdk_iotdataplane::Client::new(&aws_config::load_from_env().await),
        "stockbridge",
    );
    let level = StockLevel {
        held: 0,
        product_id: ProductId::parse("prod_iot").unwrap(),
        store_id: StoreId::parse(store.clone()).unwrap(),
        available: 7,
        version: 3,
        updated_at: Timestamp(1_761_935_276_000),
    };
    p.publish(&level).await.unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sf", &format!("{bridge}/_publishes")])
        .output()
        .unwrap();
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    let topic = format!("stockbridge/{store}/products/prod_iot/stock");
    let mine: Vec<&Value> = all["publishes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["topic"].as_str() == Some(topic.as_str()))
        .collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["qos"], Value::from(1));
    assert_eq!(mine[0]["retain"], Value::from(true));
    let payload: Value = serde_json::from_str(mine[0]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["available"], Value::from(7));
    assert_eq!(payload["version"], Value::from(3));
    assert_eq!(payload["sold_out"], Value::from(false));
    a_publish_the_service_cannot_take_now_is_retryable(&bridge).await;
}

/// Run by the test above, after it (the faults would fail any publish running meanwhile).
async fn a_publish_the_service_cannot_take_now_is_retryable(bridge: &str) {
    // More 503s in a row than the SDK's own attempts (3).
    let out = std::process::Command::new("curl")
        .args(["-sf", "-X", "POST", "-H", "content-type: application/json"])
        .args(["-d", r#"{"count": 10}"#, &format!("{bridge}/_faults")])
        .output()
        .unwrap();
    assert!(out.status.success());
    let p = IotPublisher::new(
        aws_sdk_iotdataplane::Client::new(&aws_config::load_from_env().await),
        "stockbridge",
    );
    let level = StockLevel {
        held: 0,
        product_id: ProductId::parse("prod_iot").unwrap(),
        store_id: StoreId::parse(format!("iotfault{}", std::process::id())).unwrap(),
        available: 1,
        version: 1,
        updated_at: Timestamp(1_761_935_276_000),
    };
    let err = p.publish(&level).await.unwrap_err();
    std::process::Command::new("curl")
        .args(["-sf", "-X", "POST", "-H", "content-type: application/json"])
        .args(["-d", r#"{"count": 0}"#, &format!("{bridge}/_faults")])
        .output()
        .unwrap();
    assert!(err.retryable, "{err}");
}

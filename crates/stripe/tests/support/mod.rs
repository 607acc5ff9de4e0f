//! Shared by the adapter's tests against the local fake Stripe: its URL, its test API and a
//! client with fast retries.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;
use stockbridge_stripe::{RetryPolicy, StripeConfig, StripePayments};

pub fn base() -> String {
    std::env::var("STOCKBRIDGE_STRIPE_URL")
        .expect("STOCKBRIDGE_STRIPE_URL is not set: run scripts/test")
}

pub fn control(path: &str, body: Value) -> Value {
    let out = std::process::Command::new("curl")
        .args([
            "-sf",
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            &body.to_string(),
            &format!("{}{path}", base()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

pub fn requests(prefix: &str) -> Vec<Value> {
    let out = std::process::Command::new("curl")
        .args([
            "-sf",
            &format!("{}/_test/requests?path_prefix={prefix}", base()),
        ])
        .output()
        .unwrap();
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["requests"]
        .as_array()
        .unwrap()
        .clone()
}

pub fn client() -> StripePayments {
    StripePayments::new(&StripeConfig {
        api_key: "sk_test_adapter".to_owned().into(),
        api_base: Some(base()),
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(50),
        },
        max_rps: 100.0,
        burst: 100,
        budget: None,
    })
    .unwrap()
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

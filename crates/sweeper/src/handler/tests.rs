//! The edge with in-memory ports and a default `Context`.

use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use stockbridge_app::memory::{MemoryPayments, MemoryPublisher, MemoryStore, TickingClock};
use stockbridge_app::orders::Services;

use super::{deadline, handle};

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn context(deadline_ms: u64) -> Context {
    let mut c = Context::default();
    c.deadline = deadline_ms;
    c
}

#[tokio::test]
async fn a_run_with_nothing_expired_reports_zeros() {
    let inventory = Services::new(
        MemoryStore::default(),
        MemoryPublisher::default(),
        MemoryPayments::default(),
        TickingClock::default(),
        stockbridge_app::memory::inventory_config(),
    );
    let event = LambdaEvent::new(json!({"detail": {}}), context(now_ms() + 60_000));
    let out = handle(&inventory, event).await.unwrap();
    assert_eq!(
        out,
        json!({"expired": 0, "released": 0, "raced": 0, "failed": 0, "more": false})
    );
}

#[test]
fn the_deadline_keeps_ten_seconds_back_and_a_past_one_leaves_no_time() {
    let before = std::time::Instant::now();
    let past = deadline(&Context::default()).unwrap();
    assert!(
        past <= std::time::Instant::now() && past >= before,
        "no time at all, never no limit"
    );
    let in_a_minute = deadline(&context(now_ms() + 60_000)).unwrap();
    let left = in_a_minute.duration_since(std::time::Instant::now());
    assert!(
        left > std::time::Duration::from_secs(45) && left <= std::time::Duration::from_secs(50),
        "{left:?}"
    );
}

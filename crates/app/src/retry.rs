//! Backoff for optimistic-concurrency retries.

use std::time::Duration;

use rand::Rng;

/// Sleeps a random time in `[0, min(cap, base * 2^attempt)]` ("full jitter"), so concurrent
/// writers that collided spread out instead of colliding again.
pub(crate) async fn backoff(attempt: u32) {
    let base_ms: u64 = 5;
    let cap_ms: u64 = 400;
    let ceiling = cap_ms.min(base_ms.saturating_mul(1u64 << attempt.min(16)));
    let ms = rand::rng().random_range(0..=ceiling);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

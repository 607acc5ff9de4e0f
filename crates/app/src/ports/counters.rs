//! Fixed-window counters (the checkout's caps, the shared Stripe budget).

use super::*;

/// One count in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// What is counted and for whom: `holds:email:{hash}`, `fails:client:{hash}`, ...
    pub key: String,
    /// The window's start (ms), a multiple of its length.
    pub start: Timestamp,
    /// Its length in seconds.
    pub seconds: u32,
}

impl Window {
    /// The window of `seconds` that contains `now`.
    pub fn containing(key: String, now: Timestamp, seconds: u32) -> Self {
        let len = i64::from(seconds.max(1)) * 1000;
        Self {
            key,
            start: Timestamp(now.0 - now.0.rem_euclid(len)),
            seconds: seconds.max(1),
        }
    }

    /// Seconds from `now` until the window ends (what `Retry-After` says), at least 1.
    pub fn retry_after(&self, now: Timestamp) -> u32 {
        let end = self.start.0 + i64::from(self.seconds) * 1000;
        u32::try_from(((end - now.0) + 999) / 1000)
            .unwrap_or(self.seconds)
            .max(1)
    }
}

/// Counts in time windows, shared by every instance (the table; expired windows are deleted by
/// its TTL).
pub trait Counters: Send + Sync {
    /// Adds `n` to the window's count unless that would take it past `cap`; whether it was
    /// added.
    fn take(
        &self,
        window: &Window,
        n: u32,
        cap: u32,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The window's count.
    fn count(&self, window: &Window) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Adds `n` to the window's count, without a cap.
    fn add(&self, window: &Window, n: u32) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes `n` back from the window's count (taken by a request that held nothing, or by a
    /// hold that was never paid); never below 0.
    fn give_back(
        &self,
        window: &Window,
        n: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

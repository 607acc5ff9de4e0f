//! A clock that ticks on every read.

use super::*;

/// A clock that ticks one millisecond per call, from a start; clones share one time.
#[derive(Debug, Clone)]
pub struct TickingClock(pub std::sync::Arc<AtomicI64>);

impl Default for TickingClock {
    fn default() -> Self {
        Self(std::sync::Arc::new(AtomicI64::new(1_761_935_276_000)))
    }
}

impl Clock for TickingClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.fetch_add(1, Ordering::Relaxed))
    }
}

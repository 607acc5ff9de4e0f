//! The parking lot: replayed events and repairs that failed, kept with their reason (what
//! becomes of them: `crate::parking`).

use super::*;

/// Where an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParkedState {
    /// Failed, retryable: the next runs try again.
    Retrying,
    /// Set aside: skipped by every run until a person retries or skips it.
    Parked,
    /// A person decided to leave it: never tried again.
    Skipped,
}

/// A replayed event or a repair that failed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Parked {
    /// `{kind}:{id}`: `event:evt_…`, `refund:cs_…`, `link:plink_…`, `session:cs_…`.
    pub id: String,
    /// Why it failed last.
    pub reason: String,
    /// Failures so far.
    pub attempts: u32,
    /// Where it stands.
    pub state: ParkedState,
    /// When it first failed (ms).
    pub first_failed: Timestamp,
    /// When it failed last (ms).
    pub last_failed: Timestamp,
    /// A replayed event itself, so it can be retried after the cursor moved past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<serde_json::Value>,
}

/// Stores parked and retrying items.
pub trait ParkingLot: Send + Sync {
    /// Every record (a few: they are failures).
    fn parked(&self) -> impl Future<Output = Result<Vec<Parked>, StoreError>> + Send;

    /// Writes (or overwrites) a record.
    fn save_parked(&self, record: &Parked) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets a record (it succeeded, or a person retries it).
    fn remove_parked(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

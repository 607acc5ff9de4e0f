//! Parking: one failure never disables the rest.
//!
//! A replayed event or a repair that fails is recorded with its reason. A non-retryable failure
//! (malformed data, a refusal from Stripe) is *parked* at once; a retryable one (a throttle, an
//! outage, a conflict) is retried by the next runs and parked after [`MAX_ATTEMPTS`]. A parked
//! item is skipped by every later run — the replay cursor moves past a parked event, the checks go
//! on with the next order or link — is counted in the run's summary (`Parked`, alarmed on) and
//! logged at error, and waits for a person: `stockbridge parked list | retry ID | skip ID`.
//!
//! # Layout
//! - [`ParkingLot`]: the port (one record per item, keyed `{kind}:{id}`; in `crate::ports`).
//! - [`Failures`]: a run's view of it: what to skip, what to record.

use std::collections::BTreeMap;

use stockbridge_domain::Timestamp;
use tracing::{error, warn};

use crate::ports::StoreError;
pub use crate::ports::{Parked, ParkedState, ParkingLot};

/// Runs a retryable failure is retried before it is parked.
pub const MAX_ATTEMPTS: u32 = 5;

/// A failure to record.
#[derive(Debug)]
pub struct Failure<'a> {
    /// `{kind}:{id}`.
    pub id: String,
    /// Why.
    pub reason: String,
    /// Whether a later attempt may succeed.
    pub retryable: bool,
    /// The event, for a replayed one.
    pub event: Option<&'a serde_json::Value>,
}

/// One run's view of the parking lot: read once, updated as the run goes.
#[derive(Debug)]
pub struct Failures<'a, L> {
    lot: &'a L,
    records: BTreeMap<String, Parked>,
}

impl<'a, L: ParkingLot> Failures<'a, L> {
    /// Reads the lot.
    ///
    /// # Errors
    /// [`StoreError`] when it cannot be read.
    pub async fn load(lot: &'a L) -> Result<Self, StoreError> {
        Ok(Self {
            lot,
            records: lot
                .parked()
                .await?
                .into_iter()
                .map(|p| (p.id.clone(), p))
                .collect(),
        })
    }

    /// True when `id` failed before and is still retried.
    pub fn retrying(&self, id: &str) -> bool {
        self.records
            .get(id)
            .is_some_and(|p| p.state == ParkedState::Retrying)
    }

    /// True when `id` is parked or skipped: the run leaves it alone.
    pub fn set_aside(&self, id: &str) -> bool {
        self.records
            .get(id)
            .is_some_and(|p| p.state != ParkedState::Retrying)
    }

    /// Records a failure. Returns true when the item is parked now (the caller moves on past
    /// it); false when it is to be retried by a later run.
    ///
    /// # Errors
    /// [`StoreError`] when the record cannot be written.
    pub async fn fail(&mut self, failure: Failure<'_>, now: Timestamp) -> Result<bool, StoreError> {
        let previous = self.records.get(&failure.id);
        let attempts = previous.map_or(0, |p| p.attempts) + 1;
        let park = !failure.retryable || attempts >= MAX_ATTEMPTS;
        let record = Parked {
            id: failure.id.clone(),
            reason: failure.reason,
            attempts,
            state: if park {
                ParkedState::Parked
            } else {
                ParkedState::Retrying
            },
            first_failed: previous.map_or(now, |p| p.first_failed),
            last_failed: now,
            event: failure.event.cloned(),
        };
        self.lot.save_parked(&record).await?;
        if park {
            error!(parked = %record.id, reason = %record.reason, attempts, "parked: skipped by every run until `stockbridge parked retry` or `skip`");
        } else {
            warn!(failed = %record.id, reason = %record.reason, attempts, "failed; the next run retries it");
        }
        self.records.insert(record.id.clone(), record);
        Ok(park)
    }

    /// Records a failure of a repair (see [`Self::fail`]); returns its id when it is parked
    /// now, for the run's report.
    ///
    /// # Errors
    /// [`StoreError`] when the record cannot be written.
    pub async fn note(
        &mut self,
        id: String,
        reason: impl std::fmt::Display,
        retryable: bool,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let failure = Failure {
            id: id.clone(),
            reason: reason.to_string(),
            retryable,
            event: None,
        };
        Ok(self.fail(failure, now).await?.then_some(id))
    }

    /// An item that had failed before succeeded: its record goes.
    ///
    /// # Errors
    /// [`StoreError`] when the record cannot be removed.
    pub async fn succeeded(&mut self, id: &str) -> Result<(), StoreError> {
        if self.records.remove(id).is_some() {
            self.lot.remove_parked(id).await?;
        }
        Ok(())
    }
}

/// How many items are parked now (not retrying, not skipped): the `Parked` metric and
/// `stockbridge status`.
///
/// # Errors
/// [`StoreError`] when the lot cannot be read.
pub async fn count_parked<L: ParkingLot>(lot: &L) -> Result<usize, StoreError> {
    Ok(lot
        .parked()
        .await?
        .iter()
        .filter(|p| p.state == ParkedState::Parked)
        .count())
}

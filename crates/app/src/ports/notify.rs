//! Telling someone about a reconciler run, and the run's summary it carries (the reconciler
//! builds it: `crate::reconcile::RunSummary::of`).

use super::*;

/// Why a notification failed.
#[derive(Debug, thiserror::Error)]
#[error("publishing the reconciliation summary failed: {0}")]
pub struct NotifyError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Publishes each reconciler run's summary (the `stockbridge.reconciliation` event).
pub trait Notifier: Send + Sync {
    /// Publishes one summary.
    fn notify(&self, summary: &RunSummary) -> impl Future<Output = Result<(), NotifyError>> + Send;
}

/// A [`Notifier`] that publishes nothing (the CLI without `--notify`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNotifier;

impl Notifier for NoNotifier {
    async fn notify(&self, _summary: &RunSummary) -> Result<(), NotifyError> {
        Ok(())
    }
}

/// A reconciler run in one record: what `stockbridge status` shows, and the detail of the
/// `stockbridge.reconciliation` EventBridge event users route to e-mail or Slack.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunSummary {
    /// When it ran (RFC 3339).
    pub at: String,
    /// Only reported, repaired nothing.
    pub dry_run: bool,
    /// Events replayed that had been missed by the delivery path.
    pub events_recovered: usize,
    /// The replay cursor after the run.
    pub cursor: Option<String>,
    /// Age of the cursor's event in days.
    pub cursor_age_days: Option<i64>,
    /// Discrepancies found that call for a repair (all checks).
    pub discrepancies: usize,
    /// Findings reported and left alone on purpose (a link someone else switched off, a
    /// session that may be history): recorded, not alarmed on.
    #[serde(default)]
    pub left_alone: usize,
    /// Discrepancies repaired.
    pub repaired: usize,
    /// Discrepancies per check (`link_active_iff_in_stock`, ...).
    pub by_check: std::collections::BTreeMap<String, usize>,
    /// True when something was fixed that an event should have fixed: a missed event replayed,
    /// a paid session without an order, or a catalog difference no catalog-sync message fixed. The event pipeline (Stripe's event destination,
    /// EventBridge, the inventory function) needs a look.
    pub pipeline_broken: bool,
    /// The first findings (at most 20), for the notification.
    pub findings: Vec<String>,
    /// Replayed events and repairs parked now (they failed for good and wait for a person:
    /// `stockbridge parked list`).
    #[serde(default)]
    pub parked: usize,
    /// Phases or checks that could not run to their end (the others still ran).
    #[serde(default)]
    pub errors: Vec<String>,
    /// The operator's switches during the run (`stockbridge pause`).
    #[serde(default)]
    pub controls: Controls,
    /// Phases that ran out of their share of the time (the next run goes on).
    #[serde(default)]
    pub unfinished: Vec<String>,
}

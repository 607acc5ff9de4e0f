//! Invariant checks and repairs run by the reconciler (and `stockbridge reconcile`): for now,
//! "a product's payment links are active if and only if its stock > 0". Every discrepancy is
//! logged and recorded, and — unless it is a dry run — repaired.

use stockbridge_domain::invariants::{Discrepancy, Repair, check_links, check_refund};
use stockbridge_domain::{
    CatalogItem, Effects, RefundRequest, StoreId, WriteSet, record_links_off,
    refund_idempotency_key,
};
use tracing::warn;

use crate::effects::{EffectError, SOLD_OUT_MESSAGE, run_effects};
use crate::inventory::Inventory;
use crate::inventory::{HandleError, Handled};
use crate::parking::{Failure, Failures, ParkingLot};
use crate::ports::{
    CatalogReader, Clock, InventoryStore, LinkDirectory, Payments, PaymentsError,
    ReconciliationLog, SessionLog, StockPublisher, StoreError,
};

/// Creation times (Unix seconds, inclusive) of the Checkout Sessions to check for an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindow {
    /// The oldest.
    pub from: i64,
    /// The newest: leave a grace period for events still on their way.
    pub to: i64,
}

impl SessionWindow {
    /// The `hours` before `now` minus `grace_secs` (`None` when `hours` is 0: no check).
    pub fn last_hours(
        now: stockbridge_domain::Timestamp,
        hours: u32,
        grace_secs: u32,
    ) -> Option<Self> {
        let now_s = now.0 / 1000;
        (hours > 0).then(|| Self {
            from: now_s - i64::from(hours) * 3600,
            to: now_s - i64::from(grace_secs),
        })
    }
}

/// What a check found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckReport {
    /// Catalog items examined.
    pub items: usize,
    /// Payment links examined.
    pub links: usize,
    /// Oversold orders examined.
    pub oversold_orders: usize,
    /// Completed Checkout Sessions examined.
    pub sessions: usize,
    /// The earliest management boundary of the items examined (ms): sessions opened before it
    /// are history from before stockbridge and are not examined.
    pub managed_since: Option<i64>,
    /// Discrepancies found.
    pub discrepancies: Vec<Discrepancy>,
    /// How many were repaired.
    pub repaired: usize,
    /// Repairs parked by this run (`{kind}:{id}`): they failed for good and wait for a person.
    pub parked: Vec<String>,
    /// Checks that could not run to the end (the others still ran).
    pub errors: Vec<String>,
}

/// Why a check stopped.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Reading the catalog or recording failed.
    #[error("the store: {0}")]
    Store(#[from] StoreError),
    /// Stripe failed.
    #[error("Stripe: {0}")]
    Payments(#[from] PaymentsError),
    /// A repair through the effects runner failed.
    #[error("repair: {0}")]
    Repair(#[from] EffectError),
    /// Applying a session without an order failed.
    #[error("applying checkout session {session}: {source}")]
    Apply {
        /// The session.
        session: String,
        /// The cause.
        #[source]
        source: HandleError,
    },
}

impl<S, P, Y, C> Inventory<S, P, Y, C>
where
    S: InventoryStore + CatalogReader + ReconciliationLog + ParkingLot,
    P: StockPublisher,
    Y: Payments + LinkDirectory,
    C: Clock,
{
    /// Checks that every catalog product's payment links are active iff it has stock (of one
    /// store, or all), records each discrepancy and, unless `dry_run`, repairs it: a link
    /// switched off at 0 is recorded as switched off by stockbridge (so a restock switches it
    /// back on); a link switched on is forgotten as such.
    ///
    /// # Errors
    /// [`CheckError`]; repairs already made stay made.
    pub async fn check_link_invariants(
        &self,
        store: Option<&StoreId>,
        dry_run: bool,
    ) -> Result<CheckReport, CheckError> {
        let mut failures = Failures::load(&self.store).await?;
        let mut report = CheckReport::default();
        self.check_links(store, dry_run, &mut failures, &mut report)
            .await?;
        Ok(report)
    }

    async fn check_links(
        &self,
        store: Option<&StoreId>,
        dry_run: bool,
        failures: &mut Failures<'_, S>,
        report: &mut CheckReport,
    ) -> Result<(), CheckError> {
        let items = match store {
            Some(s) => self.store.store_items(s).await?,
            None => self.store.all_items().await?,
        };
        report.items = items.len();
        report.managed_since = items.iter().map(|i| i.managed_since.0).min();
        let act = !dry_run && !self.store.controls().await?.links_paused;
        for item in items {
            let mut states = Vec::with_capacity(item.payment_links.len());
            for link in &item.payment_links {
                let key = format!("link:{link}");
                if failures.set_aside(&key) {
                    continue;
                }
                // One link Stripe cannot be asked about is recorded; the others go on.
                match self.payments.link_active(link).await {
                    Ok(Some(active)) => states.push((link.clone(), active)),
                    Ok(None) => {}
                    Err(e) => {
                        let failure = Failure {
                            id: key.clone(),
                            reason: format!("reading the link: {e}"),
                            retryable: e.is_retryable(),
                            event: None,
                        };
                        if failures.fail(failure, self.clock.now()).await? {
                            report.parked.push(key);
                        }
                    }
                }
            }
            report.links += states.len();
            for d in check_links(&item, &states) {
                warn!(what = d.what, subject = %d.subject, expected = %d.expected, found = %d.found, dry_run, "invariant violated");
                let now = self.clock.now();
                let repaired = act && self.repair_or_park(&item, &d, failures, report).await?;
                report.repaired += usize::from(repaired);
                self.store.record(now, &d, repaired).await?;
                report.discrepancies.push(d);
            }
        }
        Ok(())
    }

    /// [`Self::repair_link`], a failure recorded (and parked when it cannot succeed).
    async fn repair_or_park(
        &self,
        item: &CatalogItem,
        d: &Discrepancy,
        failures: &mut Failures<'_, S>,
        report: &mut CheckReport,
    ) -> Result<bool, CheckError> {
        let Repair::SetLinkActive { link, .. } = &d.action else {
            return Ok(false);
        };
        let key = format!("link:{link}");
        match self.repair_link(item, &d.action).await {
            Ok(done) => {
                failures.succeeded(&key).await?;
                Ok(done)
            }
            Err(e) => {
                let retryable = match &e {
                    CheckError::Payments(p) => p.is_retryable(),
                    CheckError::Store(s) => s.is_retryable(),
                    _ => true,
                };
                let failure = Failure {
                    id: key.clone(),
                    reason: e.to_string(),
                    retryable,
                    event: None,
                };
                if failures.fail(failure, self.clock.now()).await? {
                    report.parked.push(key);
                }
                Ok(false)
            }
        }
    }
}

impl<S, P, Y, C> Inventory<S, P, Y, C>
where
    S: InventoryStore + CatalogReader + ReconciliationLog + ParkingLot,
    P: StockPublisher,
    Y: Payments + LinkDirectory,
    C: Clock,
{
    /// Carries out a link repair on the item as it is now (re-read: a sale or a restock since
    /// the check may have settled it). A link switched off here is recorded as stockbridge's
    /// only when this call switched it; one switched on is forgotten as such. Whether it acted.
    async fn repair_link(
        &self,
        checked: &CatalogItem,
        action: &Repair,
    ) -> Result<bool, CheckError> {
        let Repair::SetLinkActive { link, active } = action else {
            return Ok(false);
        };
        let Some(item) = self
            .store
            .item(&checked.store_id, &checked.product_id)
            .await?
            .filter(|i| (i.available > 0) == *active)
        else {
            return Ok(false);
        };
        if *active && !item.deactivated_links.contains(link) {
            return Ok(false); // forgotten since: no longer stockbridge's to switch on
        }
        // Paused since the run began (`stockbridge pause links`): leave it.
        if self.store.controls().await?.links_paused {
            return Ok(false);
        }
        let message = (!active).then_some(SOLD_OUT_MESSAGE);
        let changed = self
            .payments
            .set_link_active(link, *active, message)
            .await?
            .switched();
        if *active {
            // A sale may have sold it out between the read and the switch.
            if self
                .store
                .item(&item.store_id, &item.product_id)
                .await?
                .is_some_and(|now| now.available == 0)
            {
                self.payments
                    .set_link_active(link, false, Some(SOLD_OUT_MESSAGE))
                    .await?;
                return Ok(false);
            }
            self.store
                .clear_deactivated(&item.store_id, &item.product_id, std::slice::from_ref(link))
                .await?;
        } else if changed && !item.deactivated_links.contains(link) {
            let mut links = item.deactivated_links.clone();
            links.push(link.clone());
            let record = WriteSet {
                items: vec![record_links_off(&item, links)],
                ..WriteSet::default()
            };
            // A concurrent change wins; the next run checks again.
            match self.store.commit(&record).await {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }
}

impl<S, P, Y, C> Inventory<S, P, Y, C>
where
    S: InventoryStore + CatalogReader + ReconciliationLog + ParkingLot,
    P: StockPublisher,
    Y: Payments + LinkDirectory + SessionLog,
    C: Clock,
{
    /// Runs every invariant check: links vs stock, oversold orders vs refunds, and — with
    /// `sessions` (a window of creation times, Unix seconds) — every paid Checkout Session in it
    /// has an order. The window should end some minutes ago, so sessions whose events are still
    /// on their way are not raced (and not reported as a broken pipeline).
    ///
    /// # Errors
    /// [`CheckError`]; repairs already made stay made.
    pub async fn check_invariants(
        &self,
        store: Option<&StoreId>,
        sessions: Option<SessionWindow>,
        dry_run: bool,
    ) -> Result<CheckReport, CheckError> {
        let mut failures = Failures::load(&self.store).await?;
        let mut report = CheckReport::default();
        // Refunds first: money owed to a customer comes before everything else. Each check that
        // cannot run to its end is reported, and the next one still runs.
        if let Err(e) = self
            .check_refunds(store, dry_run, &mut failures, &mut report)
            .await
        {
            tracing::error!(error = %e, "refund check stopped; the other checks go on");
            report.errors.push(format!("refunds: {e}"));
        }
        if let Err(e) = self
            .check_links(store, dry_run, &mut failures, &mut report)
            .await
        {
            tracing::error!(error = %e, "link check stopped; the other checks go on");
            report.errors.push(format!("links: {e}"));
        }
        // Sessions opened before every item's management boundary are history the merchant's
        // counts include: not examined (and, with no item at all, there is nothing to apply).
        let sessions = sessions
            .zip(report.managed_since)
            .map(|(w, since)| SessionWindow {
                from: w.from.max(since.div_euclid(1000)),
                ..w
            });
        if sessions.is_some() && report.managed_since.is_none() && !report.errors.is_empty() {
            report
                .errors
                .push("sessions: not checked (the catalog could not be read)".to_owned());
        }
        if let Some(window) = sessions
            && let Err(e) = self
                .check_paid_sessions(store, window, dry_run, &mut failures, &mut report)
                .await
        {
            tracing::error!(error = %e, "session check stopped; the other checks go on");
            report.errors.push(format!("sessions: {e}"));
        }
        Ok(report)
    }

    async fn check_refunds(
        &self,
        store: Option<&StoreId>,
        dry_run: bool,
        failures: &mut Failures<'_, S>,
        report: &mut CheckReport,
    ) -> Result<(), CheckError> {
        let act = !dry_run && !self.store.controls().await?.refunds_paused;
        let orders = self.store.oversold_orders(store).await?;
        report.oversold_orders = orders.len();
        for order in orders {
            let Some(d) = check_refund(&order) else {
                continue;
            };
            let key = format!("refund:{}", order.order_id);
            if failures.set_aside(&key) {
                continue;
            }
            warn!(what = d.what, subject = %d.subject, dry_run, "invariant violated");
            let now = self.clock.now();
            let mut repaired = false;
            if act
                && let Repair::Refund {
                    order_id,
                    payment_intent,
                    amount,
                } = &d.action
            {
                let effects = Effects {
                    refund: Some(RefundRequest {
                        order_id: order_id.clone(),
                        payment_intent: payment_intent.clone(),
                        amount: *amount,
                        idempotency_key: refund_idempotency_key(order_id),
                    }),
                    ..Effects::default()
                };
                match run_effects(&self.store, &self.publisher, &self.payments, &effects, now).await
                {
                    Ok(()) => {
                        failures.succeeded(&key).await?;
                        repaired = true;
                    }
                    Err(e) => {
                        let failure = Failure {
                            id: key.clone(),
                            reason: e.to_string(),
                            retryable: e.is_retryable(),
                            event: None,
                        };
                        if failures.fail(failure, now).await? {
                            report.parked.push(key);
                        }
                    }
                }
            }
            report.repaired += usize::from(repaired);
            self.store.record(now, &d, repaired).await?;
            report.discrepancies.push(d);
        }
        Ok(())
    }
}

/// The run's counts as one CloudWatch embedded-metric-format log line (namespace
/// `stockbridge`, dimension `Function`): `EventsRecovered`, `Discrepancies`, `Repaired` and
/// `PipelineBroken` (0 or 1). Printed by the reconciler Lambda; CloudWatch turns it into
/// metrics (the template alarms on them).
pub fn emf_line(
    function: &str,
    summary: &RunSummary,
    now: stockbridge_domain::Timestamp,
) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": now.0,
            "CloudWatchMetrics": [{
                "Namespace": "stockbridge",
                "Dimensions": [["Function"]],
                "Metrics": [
                    {"Name": "EventsRecovered", "Unit": "Count"},
                    {"Name": "Discrepancies", "Unit": "Count"},
                    {"Name": "Repaired", "Unit": "Count"},
                    {"Name": "PipelineBroken", "Unit": "Count"},
                    {"Name": "Parked", "Unit": "Count"},
                    {"Name": "Errors", "Unit": "Count"},
                    {"Name": "LeftAlone", "Unit": "Count"},
                ],
            }],
        },
        "Function": function,
        "EventsRecovered": summary.events_recovered,
        "Discrepancies": summary.discrepancies,
        "Repaired": summary.repaired,
        "PipelineBroken": u8::from(summary.pipeline_broken),
        "Parked": summary.parked,
        "Errors": summary.errors.len(),
        "LeftAlone": summary.left_alone,
    })
    .to_string()
}

impl<S, P, Y, C> Inventory<S, P, Y, C>
where
    S: InventoryStore + CatalogReader + ReconciliationLog + ParkingLot,
    P: StockPublisher,
    Y: Payments + LinkDirectory + SessionLog,
    C: Clock,
{
    /// Every paid, completed Checkout Session since `since` has an order record; a missing one
    /// is applied through the same handler (a session recovered without any event is a sign
    /// the event pipeline — delivery and `/v1/events` replay — is broken, logged as an error).
    async fn check_paid_sessions(
        &self,
        store: Option<&StoreId>,
        window: SessionWindow,
        dry_run: bool,
        failures: &mut Failures<'_, S>,
        report: &mut CheckReport,
    ) -> Result<(), CheckError> {
        for session in self.payments.completed_sessions_since(window.from).await? {
            if session.created > window.to || session.created < window.from {
                continue;
            }
            let paid = matches!(
                session
                    .object
                    .get("payment_status")
                    .and_then(|v| v.as_str()),
                Some("paid" | "no_payment_required")
            );
            let session_store = session
                .object
                .pointer("/metadata/store_id")
                .and_then(|v| v.as_str())
                .unwrap_or(self.config.default_store.as_str())
                .to_owned();
            if !paid || store.is_some_and(|s| s.as_str() != session_store) {
                continue;
            }
            report.sessions += 1;
            let key = format!("session:{}", session.id);
            if failures.set_aside(&key) {
                continue;
            }
            match self.store.load_order(&session.id).await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                // One order that cannot be read is recorded; the other sessions go on.
                Err(e) => {
                    let failure = Failure {
                        id: key.clone(),
                        reason: format!("reading the order: {e}"),
                        retryable: e.is_retryable(),
                        event: None,
                    };
                    if failures.fail(failure, self.clock.now()).await? {
                        report.parked.push(key);
                    }
                    continue;
                }
            }
            let d = Discrepancy {
                what: "paid_session_has_order",
                subject: format!("{session_store}/{}", session.id),
                expected: "an order record".to_owned(),
                found: "none: no event for it was applied".to_owned(),
                action: Repair::ApplySession {
                    session: session.id.clone(),
                },
                cause: Some("no event for it reached stockbridge, not even through /v1/events"),
            };
            tracing::error!(subject = %d.subject, dry_run, "paid checkout session without an order: the event pipeline lost it");
            let now = self.clock.now();
            if !dry_run {
                let event = serde_json::json!({
                    "id": format!("reconcile_{}", session.id),
                    "object": "event",
                    "type": crate::events::CHECKOUT_COMPLETED,
                    "livemode": session.object.get("livemode").cloned().unwrap_or(serde_json::Value::Bool(false)),
                    "created": session.created,
                    "data": {"object": session.object},
                });
                match self.apply_session_without_event(&event).await {
                    Ok(Handled::Applied {
                        outcome: stockbridge_domain::Outcome::PaidTimeUnknown,
                        ..
                    }) => {
                        let left = Discrepancy {
                            what: "paid_session_before_boundary",
                            found: "none, and it was opened before stockbridge managed a product \
                                    of it: it may be history, so it was left alone"
                                .to_owned(),
                            action: Repair::LeaveAlone,
                            cause: Some(
                                "opened before the product's import, backfill or last stock set; \
                                 Stripe's session shows when it opened, not when it was paid",
                            ),
                            ..d
                        };
                        warn!(subject = %left.subject, "paid session opened before the management boundary: left alone");
                        self.store.record(now, &left, false).await?;
                        report.discrepancies.push(left);
                        continue;
                    }
                    Ok(Handled::Applied { .. }) => {
                        failures.succeeded(&key).await?;
                        report.repaired += 1;
                    }
                    Ok(_) => {}
                    Err(source) => {
                        let failure = Failure {
                            id: key.clone(),
                            reason: source.to_string(),
                            retryable: source.is_retryable(),
                            event: None,
                        };
                        if failures.fail(failure, now).await? {
                            report.parked.push(key);
                        }
                    }
                }
            }
            self.store.record(now, &d, !dry_run).await?;
            report.discrepancies.push(d);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metric_line_is_embedded_metric_format_with_the_counts() {
        let check = CheckReport {
            repaired: 2,
            ..CheckReport::default()
        };
        let events = crate::recovery::RecoveryReport {
            recovered: 3,
            ..Default::default()
        };
        let summary = RunSummary::of(
            stockbridge_domain::Timestamp(5),
            false,
            Some(&events),
            &check,
            None,
        );
        let v: serde_json::Value = serde_json::from_str(&emf_line(
            "reconciler",
            &summary,
            stockbridge_domain::Timestamp(5),
        ))
        .unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 5);
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "stockbridge"
        );
        assert_eq!(
            (
                v["EventsRecovered"].as_u64(),
                v["Discrepancies"].as_u64(),
                v["Repaired"].as_u64(),
                v["PipelineBroken"].as_u64()
            ),
            (Some(3), Some(0), Some(2), Some(1))
        );
        assert_eq!(v["Function"], "reconciler");
    }
}

/// The last run's summary is kept under this checkpoint (for `stockbridge status`).
pub const LAST_RUN_CHECKPOINT: &str = "last_reconcile";

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
    pub controls: crate::ports::Controls,
}

impl RunSummary {
    /// Builds the summary of a run.
    pub fn of(
        at: stockbridge_domain::Timestamp,
        dry_run: bool,
        events: Option<&crate::recovery::RecoveryReport>,
        checks: &CheckReport,
        catalog: Option<&crate::catalog::CatalogCheckReport>,
    ) -> Self {
        let all: Vec<&Discrepancy> = checks
            .discrepancies
            .iter()
            .chain(catalog.into_iter().flat_map(|c| c.discrepancies.iter()))
            .collect();
        let mut by_check = std::collections::BTreeMap::new();
        for d in &all {
            *by_check.entry(d.what.to_owned()).or_insert(0) += 1;
        }
        let recovered = events.map_or(0, |e| e.recovered);
        let left_alone = all
            .iter()
            .filter(|d| d.action == Repair::LeaveAlone)
            .count();
        Self {
            at: crate::message::rfc3339(at),
            dry_run,
            events_recovered: recovered,
            cursor: events.and_then(|e| e.cursor.clone()),
            cursor_age_days: events.and_then(|e| e.cursor_age_days),
            discrepancies: all.len() - left_alone,
            left_alone,
            repaired: checks.repaired + catalog.map_or(0, |c| c.repaired),
            pipeline_broken: recovered > 0
                || by_check.contains_key("paid_session_has_order")
                || by_check.contains_key("catalog_matches_stripe"),
            by_check,
            findings: all
                .iter()
                .take(20)
                .map(|d| {
                    format!(
                        "{} {}: expected {}, found {}",
                        d.what, d.subject, d.expected, d.found
                    )
                })
                .collect(),
            parked: 0,
            errors: Vec::new(),
            controls: crate::ports::Controls::default(),
        }
    }
}

/// What one reconciler run covers.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Only this store (the catalog check, which is per product, is skipped).
    pub store: Option<StoreId>,
    /// Report only: no replay, no repair.
    pub dry_run: bool,
    /// Events replayed at most.
    pub max_events: usize,
    /// Seconds re-listed before the replay cursor (`/v1/events` is eventually consistent).
    pub event_overlap_secs: u32,
    /// Paid sessions to check for an order.
    pub sessions: Option<SessionWindow>,
    /// Parallel scan segments of the catalog check (0: skip the catalog check).
    pub catalog_segments: u32,
    /// Catalog changes younger than this are left to the sync (ms).
    pub catalog_grace_ms: i64,
    /// Stripe list requests of the catalog check per run (0: no limit).
    pub catalog_max_pages: usize,
}

/// Everything a run found and did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    /// Event replay (`None` in a dry run).
    pub events: Option<crate::recovery::RecoveryReport>,
    /// Links, refunds and sessions.
    pub links: CheckReport,
    /// Catalog against Stripe (`None` when skipped).
    pub catalog: Option<crate::catalog::CatalogCheckReport>,
    /// The summary.
    pub summary: RunSummary,
}

/// Why a run could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Reading the parking lot or recording the summary failed. (A phase that fails is
    /// reported in the summary's `errors`; the others still run.)
    #[error("recording the summary: {0}")]
    Store(#[from] StoreError),
}

/// One reconciler run: replay missed events, check links / refunds / sessions, check the
/// catalog against Stripe, then record the summary (checkpoint `last_reconcile`) and publish
/// it. A failed publish is logged, not fatal: the summary is recorded and the metrics printed.
///
/// # Errors
/// [`RunError`].
pub async fn run<S, P, Y, C, N>(
    inventory: &Inventory<S, P, Y, C>,
    sync: &crate::catalog::CatalogSync<S, Y, C>,
    notifier: &N,
    options: &RunOptions,
) -> Result<RunReport, RunError>
where
    S: InventoryStore
        + CatalogReader
        + ReconciliationLog
        + crate::ports::CatalogStore
        + crate::ports::CursorStore
        + ParkingLot,
    P: StockPublisher,
    Y: Payments + LinkDirectory + SessionLog + crate::ports::EventLog + crate::ports::StripeCatalog,
    C: Clock,
    N: crate::ports::Notifier,
{
    // `stockbridge pause repairs`: everything is computed and recorded, nothing carried out.
    let controls = inventory.store.controls().await?;
    let options = &RunOptions {
        dry_run: options.dry_run || controls.repairs_paused,
        ..options.clone()
    };
    if controls.repairs_paused {
        warn!("repairs are paused (`stockbridge resume repairs`): this run only reports");
    }
    // Each phase that cannot run to its end is reported; the next one still runs.
    let mut errors = Vec::new();
    let mut failed = |phase: &str, e: &dyn std::fmt::Display| {
        tracing::error!(phase, error = %e, "reconciler phase stopped; the others go on");
        errors.push(format!("{phase}: {e}"));
    };
    let events = if options.dry_run {
        // Setting the cursor is not a repair: events from now on stay replayable.
        if let Err(e) =
            crate::recovery::ensure_cursor(&inventory.store, inventory.clock.now()).await
        {
            failed("event replay cursor", &e);
        }
        None
    } else {
        inventory
            .recover_missed_events(
                &inventory.payments,
                &inventory.store,
                &inventory.store,
                options.max_events,
                options.event_overlap_secs,
            )
            .await
            .inspect_err(|e| failed("event replay", e))
            .ok()
    };
    let links = inventory
        .check_invariants(options.store.as_ref(), options.sessions, options.dry_run)
        .await
        .inspect_err(|e| failed("checks", e))
        .unwrap_or_default();
    let catalog = if options.store.is_none() && options.catalog_segments > 0 {
        sync.check_catalog(
            options.dry_run,
            options.catalog_segments,
            options.catalog_grace_ms,
            options.catalog_max_pages,
        )
        .await
        .inspect_err(|e| failed("catalog check", e))
        .ok()
    } else {
        None
    };
    let parked = ParkingLot::parked(&inventory.store)
        .await?
        .iter()
        .filter(|p| p.state == crate::parking::ParkedState::Parked)
        .count();
    let mut summary = RunSummary::of(
        inventory.clock.now(),
        options.dry_run,
        events.as_ref(),
        &links,
        catalog.as_ref(),
    );
    summary.parked = parked;
    summary.controls = controls;
    summary.errors = errors;
    summary.errors.extend(links.errors.iter().cloned());
    if let Some(stop) = events.as_ref().and_then(|e| e.stopped.clone()) {
        summary
            .errors
            .push(format!("event replay stopped at {stop}"));
    }
    let json = serde_json::to_string(&summary).map_err(|e| StoreError::Other(Box::new(e)))?;
    inventory
        .store
        .save_checkpoint(LAST_RUN_CHECKPOINT, &json)
        .await?;
    if summary.pipeline_broken {
        tracing::error!(events_recovered = summary.events_recovered, by_check = ?summary.by_check, "the reconciler fixed what an event should have: check the event pipeline");
    }
    if let Err(e) = notifier.notify(&summary).await {
        warn!(error = %e, "the reconciliation summary was not published");
    }
    Ok(RunReport {
        events,
        links,
        catalog,
        summary,
    })
}

//! Invariant checks and repairs run by the reconciler (and `stockbridge reconcile`): for now,
//! "a product's payment links are active if and only if its stock > 0". Every discrepancy is
//! logged and recorded, and — unless it is a dry run — repaired.

use stockbridge_domain::invariants::{Discrepancy, Repair, check_links, check_refund};
use stockbridge_domain::{
    Effects, RefundRequest, StoreId, WriteSet, record_links_off, refund_idempotency_key,
};
use tracing::warn;

use crate::effects::{EffectError, SOLD_OUT_MESSAGE, run_effects};
use crate::inventory::Inventory;
use crate::inventory::{HandleError, Handled};
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
    /// Discrepancies found.
    pub discrepancies: Vec<Discrepancy>,
    /// How many were repaired.
    pub repaired: usize,
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
    S: InventoryStore + CatalogReader + ReconciliationLog,
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
        let items = match store {
            Some(s) => self.store.store_items(s).await?,
            None => self.store.all_items().await?,
        };
        let mut report = CheckReport {
            items: items.len(),
            ..CheckReport::default()
        };
        for item in items {
            let mut states = Vec::with_capacity(item.payment_links.len());
            for link in &item.payment_links {
                if let Some(active) = self.payments.link_active(link).await? {
                    states.push((link.clone(), active));
                }
            }
            report.links += states.len();
            for d in check_links(&item, &states) {
                warn!(what = d.what, subject = %d.subject, expected = %d.expected, found = %d.found, dry_run, "invariant violated");
                let now = self.clock.now();
                if !dry_run {
                    let Repair::SetLinkActive { link, active } = &d.action else {
                        continue;
                    };
                    let message = (!active).then_some(SOLD_OUT_MESSAGE);
                    self.payments
                        .set_link_active(link, *active, message)
                        .await?;
                    if *active {
                        self.store
                            .clear_deactivated(
                                &item.store_id,
                                &item.product_id,
                                std::slice::from_ref(link),
                            )
                            .await?;
                    } else if !item.deactivated_links.contains(link) {
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
                    report.repaired += 1;
                }
                self.store.record(now, &d, !dry_run).await?;
                report.discrepancies.push(d);
            }
        }
        Ok(report)
    }
}

impl<S, P, Y, C> Inventory<S, P, Y, C>
where
    S: InventoryStore + CatalogReader + ReconciliationLog,
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
        let mut report = self.check_link_invariants(store, dry_run).await?;
        let orders = self.store.oversold_orders(store).await?;
        report.oversold_orders = orders.len();
        for order in orders {
            let Some(d) = check_refund(&order) else {
                continue;
            };
            warn!(what = d.what, subject = %d.subject, dry_run, "invariant violated");
            let now = self.clock.now();
            if !dry_run
                && let Repair::Refund {
                    order_id,
                    payment_intent,
                } = &d.action
            {
                let effects = Effects {
                    refund: Some(RefundRequest {
                        order_id: order_id.clone(),
                        payment_intent: payment_intent.clone(),
                        idempotency_key: refund_idempotency_key(order_id),
                    }),
                    ..Effects::default()
                };
                run_effects(&self.store, &self.publisher, &self.payments, &effects, now).await?;
                report.repaired += 1;
            }
            self.store.record(now, &d, !dry_run).await?;
            report.discrepancies.push(d);
        }
        if let Some(window) = sessions {
            self.check_paid_sessions(store, window, dry_run, &mut report)
                .await?;
        }
        Ok(report)
    }
}

/// The run's counts as one CloudWatch embedded-metric-format log line (namespace
/// `stockbridge`, dimension `Function`): `EventsRecovered`, `Discrepancies`, `Repaired`. Printed
/// by the reconciler Lambda; CloudWatch turns it into metrics (the template alarms on
/// `Discrepancies`).
pub fn emf_line(
    function: &str,
    events: Option<&crate::recovery::RecoveryReport>,
    check: &CheckReport,
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
                ],
            }],
        },
        "Function": function,
        "EventsRecovered": events.map_or(0, |e| e.recovered),
        "Discrepancies": check.discrepancies.len(),
        "Repaired": check.repaired,
    })
    .to_string()
}

impl<S, P, Y, C> Inventory<S, P, Y, C>
where
    S: InventoryStore + CatalogReader + ReconciliationLog,
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
        report: &mut CheckReport,
    ) -> Result<(), CheckError> {
        for session in self.payments.completed_sessions_since(window.from).await? {
            if session.created > window.to {
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
            if self.store.load_order(&session.id).await?.is_some() {
                continue;
            }
            let d = Discrepancy {
                what: "paid_session_has_order",
                subject: format!("{session_store}/{}", session.id),
                expected: "an order record".to_owned(),
                found: "none: no event for it was applied".to_owned(),
                action: Repair::ApplySession {
                    session: session.id.clone(),
                },
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
                match self.handle_stripe_event(&event).await {
                    Ok(Handled::Applied { .. }) => report.repaired += 1,
                    Ok(_) => {}
                    Err(source) => {
                        return Err(CheckError::Apply {
                            session: session.id.to_string(),
                            source,
                        });
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
        let v: serde_json::Value = serde_json::from_str(&emf_line(
            "reconciler",
            Some(&events),
            &check,
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
                v["Repaired"].as_u64()
            ),
            (Some(3), Some(0), Some(2))
        );
        assert_eq!(v["Function"], "reconciler");
    }
}

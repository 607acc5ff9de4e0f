//! The reconciler's session check: every paid Checkout Session has an order.

use stockbridge_domain::invariants::{Discrepancy, Repair};
use stockbridge_domain::{StoreId, Timestamp};
use tracing::warn;

use super::{CheckError, CheckReport, SessionWindow};
use crate::orders::{Handled, Services};
use crate::parking::Failures;
use crate::ports::{Clock, ReconcilerStore, ReconcilerStripe, StockPublisher};

impl<Store: ReconcilerStore, Publisher: StockPublisher, Stripe: ReconcilerStripe, Time: Clock>
    Services<Store, Publisher, Stripe, Time>
{
    /// Every paid, completed Checkout Session since `since` has an order record; a missing one
    /// is applied through the same handler (a session recovered without any event is a sign
    /// the event pipeline — delivery and `/v1/events` replay — is broken, logged as an error).
    pub(crate) async fn check_paid_sessions(
        &self,
        store: Option<&StoreId>,
        window: SessionWindow,
        dry_run: bool,
        failures: &mut Failures<'_, Store>,
        report: &mut CheckReport,
        budget: &super::Budget,
    ) -> Result<(), CheckError> {
        for session in self.payments.completed_sessions_since(window.from).await? {
            if budget.spent() {
                report.unfinished.push("sessions");
                break;
            }
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
                    report.parked.extend(
                        failures
                            .note(
                                key.clone(),
                                format!("reading the order: {e}"),
                                e.is_retryable(),
                                self.clock.now(),
                            )
                            .await?,
                    );
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
            if !dry_run
                && !self
                    .apply_lost_session(&session, (&d, now), &key, failures, report)
                    .await?
            {
                continue; // left alone, recorded as such
            }
            self.store.record(now, &d, !dry_run).await?;
            report.discrepancies.push(d);
        }
        Ok(())
    }

    /// Applies a paid session the event pipeline lost, as its `completed` event would have.
    /// `false`: it opened before a management boundary and was left alone (recorded so).
    async fn apply_lost_session(
        &self,
        session: &crate::ports::SessionSummary,
        (d, now): (&Discrepancy, Timestamp),
        key: &str,
        failures: &mut Failures<'_, Store>,
        report: &mut CheckReport,
    ) -> Result<bool, CheckError> {
        let event = serde_json::json!({
            "id": format!("reconcile_{}", session.id),
            "object": "event",
            "type": crate::decode::CHECKOUT_COMPLETED,
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
                        "opened before the product's import, backfill or last recount; \
                             Stripe's session shows when it opened, not when it was paid",
                    ),
                    ..d.clone()
                };
                warn!(subject = %left.subject, "paid session opened before the management boundary: left alone");
                self.store.record(now, &left, false).await?;
                report.discrepancies.push(left);
                return Ok(false);
            }
            Ok(Handled::Applied { .. }) => {
                failures.succeeded(key).await?;
                report.repaired += 1;
            }
            Ok(_) => {}
            Err(source) => {
                report.parked.extend(
                    failures
                        .note(
                            key.to_owned(),
                            source.to_string(),
                            source.is_retryable(),
                            now,
                        )
                        .await?,
                );
            }
        }
        Ok(true)
    }
}

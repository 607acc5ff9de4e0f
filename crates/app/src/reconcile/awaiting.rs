//! The reconciler's check of orders whose delayed payment is still awaited (bank debits and
//! other methods that clear days later). Each is compared with Stripe: one whose payment has
//! since cleared or failed — its event lost, even from `/v1/events` — is settled as that event
//! would have settled it (a held order confirmed or its stock released; an oversold one
//! refunded once it is paid). One still clearing past [`AWAITING_WINDOW_MS`] is reported.

use serde_json::json;
use stockbridge_domain::invariants::{Discrepancy, Repair};
use stockbridge_domain::{OrderRecord, StoreId, Timestamp};
use tracing::{error, warn};

use super::{Budget, CheckError, CheckReport};
use crate::decode::{ASYNC_PAYMENT_FAILED, ASYNC_PAYMENT_SUCCEEDED};
use crate::orders::Services;
use crate::parking::Failures;
use crate::ports::{Clock, ReconcilerStore, ReconcilerStripe, SessionPayment, StockPublisher};

/// Delayed methods clear within a few business days: an order still clearing after two weeks
/// is reported for a person.
pub const AWAITING_WINDOW_MS: i64 = 14 * 86_400_000;

impl<Store: ReconcilerStore, Publisher: StockPublisher, Stripe: ReconcilerStripe, Time: Clock>
    Services<Store, Publisher, Stripe, Time>
{
    /// Every order awaiting its payment since before `cutoff` against Stripe.
    pub(crate) async fn check_awaiting(
        &self,
        (store, cutoff): (Option<&StoreId>, Timestamp),
        dry_run: bool,
        failures: &mut Failures<'_, Store>,
        report: &mut CheckReport,
        budget: &Budget,
    ) -> Result<(), CheckError> {
        for order in self.store.awaiting_orders(store).await? {
            if budget.spent() {
                report.unfinished.push("awaiting");
                break;
            }
            let key = format!("awaiting:{}", order.order_id);
            // Younger ones may still get their event.
            if order.created_at > cutoff || failures.set_aside(&key) {
                continue;
            }
            report.awaiting_orders += 1;
            let now = self.clock.now();
            let payment = match self.payments.session_payment(&order.order_id).await {
                Ok(p) => p,
                Err(e) => {
                    report.parked.extend(
                        failures
                            .note(
                                key.clone(),
                                format!("reading the session: {e}"),
                                e.is_retryable(),
                                now,
                            )
                            .await?,
                    );
                    continue;
                }
            };
            let Some(d) = settled(&order, payment, now) else {
                continue;
            };
            let mut repaired = false;
            if let Repair::ApplySession { .. } = &d.action {
                error!(subject = %d.subject, found = %d.found, dry_run, "a delayed payment settled at Stripe without its event reaching stockbridge");
                if !dry_run {
                    match self
                        .handle_stripe_event(&settle_event(
                            &order,
                            payment,
                            now,
                            self.config.filter.livemode,
                        ))
                        .await
                    {
                        Ok(_) => {
                            failures.succeeded(&key).await?;
                            repaired = true;
                        }
                        Err(e) => {
                            report.parked.extend(
                                failures
                                    .note(key.clone(), e.to_string(), e.is_retryable(), now)
                                    .await?,
                            );
                        }
                    }
                }
            } else {
                warn!(subject = %d.subject, found = %d.found, "a delayed payment is still clearing past its window");
            }
            report.repaired += usize::from(repaired);
            self.store.record(now, &d, repaired).await?;
            report.discrepancies.push(d);
        }
        Ok(())
    }
}

/// The discrepancy between an awaiting order and its payment at Stripe, if any.
fn settled(order: &OrderRecord, payment: SessionPayment, now: Timestamp) -> Option<Discrepancy> {
    let subject = format!("{}/{}", order.store_id, order.order_id);
    let (what, found, action, cause) = match payment {
        SessionPayment::Pending if now.0 - order.created_at.0 > AWAITING_WINDOW_MS => (
            "awaiting_order_overdue",
            format!(
                "still clearing at Stripe after {} days",
                (now.0 - order.created_at.0) / 86_400_000
            ),
            Repair::LeaveAlone,
            "a delayed payment far slower than its method's window: look at it in the Dashboard",
        ),
        SessionPayment::Pending => return None,
        SessionPayment::Paid | SessionPayment::Failed => (
            "awaiting_order_settled",
            format!(
                "still awaiting here, {} at Stripe",
                if payment == SessionPayment::Paid {
                    "paid"
                } else {
                    "failed"
                }
            ),
            Repair::ApplySession {
                session: order.order_id.clone(),
            },
            "its async payment event never reached stockbridge, not even through /v1/events",
        ),
    };
    Some(Discrepancy {
        what,
        subject,
        expected: "settled as its payment at Stripe".to_owned(),
        found,
        action,
        cause: Some(cause),
    })
}

/// The `checkout.session.async_payment_*` event the order should have had.
fn settle_event(
    order: &OrderRecord,
    payment: SessionPayment,
    now: Timestamp,
    livemode: bool,
) -> serde_json::Value {
    let paid = payment == SessionPayment::Paid;
    json!({
        "id": format!("reconcile_async_{}", order.order_id),
        "object": "event",
        "type": if paid { ASYNC_PAYMENT_SUCCEEDED } else { ASYNC_PAYMENT_FAILED },
        "livemode": livemode,
        "created": now.0.div_euclid(1000),
        "data": {"object": {
            "id": order.order_id.as_str(),
            "object": "checkout.session",
            "payment_status": if paid { "paid" } else { "unpaid" },
            "payment_intent": order.payment_intent.as_ref().map(|p| p.as_str()),
            "metadata": {"store_id": order.store_id.as_str()},
        }},
    })
}

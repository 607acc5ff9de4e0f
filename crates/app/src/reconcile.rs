//! Invariant checks and repairs run by the reconciler (and `stockbridge reconcile`): for now,
//! "a product's payment links are active if and only if its stock > 0". Every discrepancy is
//! logged and recorded, and — unless it is a dry run — repaired.

use stockbridge_domain::invariants::{Discrepancy, Repair, check_links, check_refund};
use stockbridge_domain::{
    Effects, ItemUpdate, RefundRequest, StoreId, WriteSet, refund_idempotency_key,
};
use tracing::warn;

use crate::effects::{EffectError, SOLD_OUT_MESSAGE, run_effects};
use crate::inventory::Inventory;
use crate::ports::{
    CatalogReader, Clock, InventoryStore, LinkDirectory, Payments, PaymentsError,
    ReconciliationLog, StockPublisher, StoreError,
};

/// What a check found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckReport {
    /// Catalog items examined.
    pub items: usize,
    /// Payment links examined.
    pub links: usize,
    /// Oversold orders examined.
    pub oversold_orders: usize,
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
                            items: vec![ItemUpdate {
                                store_id: item.store_id.clone(),
                                product_id: item.product_id.clone(),
                                expected_version: item.version,
                                available: item.available,
                                version: item.version,
                                expected_deactivated_links: item.deactivated_links.clone(),
                                deactivated_links: links,
                                at: item.updated_at,
                            }],
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
    Y: Payments + LinkDirectory,
    C: Clock,
{
    /// Runs every invariant check: links vs stock, then oversold orders vs refunds.
    ///
    /// # Errors
    /// [`CheckError`]; repairs already made stay made.
    pub async fn check_invariants(
        &self,
        store: Option<&StoreId>,
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

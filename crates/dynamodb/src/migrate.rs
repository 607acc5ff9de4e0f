//! `stockbridge migrate`: bring records an earlier release wrote up to this release's layout,
//! where the new release does not do it by itself.
//!
//! Every step is idempotent and conditional on the record not having changed since it was
//! read, so it can run while the functions run, be interrupted and run again. This release's
//! steps (docs/deploy.md "Upgrading a live stack"):
//! 1. pending checkout holds without `hold_queue` get it, so the sweeper's index lists them
//!    at once (without it they are still released: the sweeper scans for a day after the
//!    upgrade);
//! 2. with a retention (`RETENTION_DAYS`), closed orders, ledger entries and findings written
//!    before it get their `expires_at` (otherwise they are kept for good).

use stockbridge_app::ports::StoreError;
use stockbridge_domain::{OrderStatus, Timestamp};

use crate::housekeeping::HOLD_QUEUE;
use crate::{Attrs, DynamoStore, get_n, get_s, n, parse_order, s, sdk_error};

/// What a migration found and changed (with `dry_run`, would change).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MigrationReport {
    /// Records read.
    pub scanned: u64,
    /// Pending holds given their index key.
    pub holds_indexed: u64,
    /// Records given an expiry.
    pub expiries_set: u64,
    /// Records that changed between the read and the update (left to the functions).
    pub changed_meanwhile: u64,
}

/// One update a record needs.
enum Step {
    IndexHold,
    Expire(i64),
}

impl DynamoStore {
    /// Runs this release's migration over the whole table, page by page.
    ///
    /// # Errors
    /// [`StoreError`] when the table cannot be read or written (a rerun continues where the
    /// records still need it).
    pub async fn migrate(&self, dry_run: bool) -> Result<MigrationReport, StoreError> {
        let mut report = MigrationReport::default();
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(sdk_error)?;
            report.scanned += 1;
            for step in self.steps(&item)? {
                match &step {
                    Step::IndexHold => report.holds_indexed += 1,
                    Step::Expire(_) => report.expiries_set += 1,
                }
                if !dry_run && !self.apply(&item, step).await? {
                    report.changed_meanwhile += 1;
                }
            }
        }
        Ok(report)
    }

    fn steps(&self, a: &Attrs) -> Result<Vec<Step>, StoreError> {
        let kind = a
            .get("kind")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str);
        let has = |name: &str| a.contains_key(name);
        let mut steps = Vec::new();
        match kind {
            Some("order") => {
                let order = parse_order(a)?;
                if order.status == OrderStatus::Pending
                    && order.hold.is_some()
                    && !has("hold_queue")
                {
                    steps.push(Step::IndexHold);
                }
                if let Some(r) = self
                    .retention
                    .filter(|_| order.is_closed() && !has("expires_at"))
                {
                    steps.push(Step::Expire(r.expires_at(order.updated_at)));
                }
            }
            Some("ledger" | "discrepancy") if !has("expires_at") => {
                if let Some(r) = self.retention {
                    let at = Timestamp(get_n(a, "at", get_s(a, "pk", "?")?)?);
                    steps.push(Step::Expire(r.expires_at(at)));
                }
            }
            _ => {}
        }
        Ok(steps)
    }

    /// Applies one step unless the record changed since it was read; whether it applied.
    async fn apply(&self, a: &Attrs, step: Step) -> Result<bool, StoreError> {
        let key: Attrs = ["pk", "sk"]
            .iter()
            .filter_map(|k| a.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key));
        let update = match step {
            Step::IndexHold => update
                .update_expression("SET hold_queue = :q")
                .condition_expression("#status = :pending AND attribute_not_exists(hold_queue)")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":q", s(HOLD_QUEUE))
                .expression_attribute_values(":pending", s("pending")),
            Step::Expire(at) => {
                let update = update
                    .update_expression("SET expires_at = :x")
                    .expression_attribute_values(":x", n(at));
                match a.get("updated_at") {
                    // An order rewritten meanwhile carries its own expiry (or is open again).
                    Some(u) => update
                        .condition_expression(
                            "attribute_not_exists(expires_at) AND updated_at = :u",
                        )
                        .expression_attribute_values(":u", u.clone()),
                    None => update.condition_expression(
                        "attribute_exists(pk) AND attribute_not_exists(expires_at)",
                    ),
                }
            }
        };
        self.conditional(update).await
    }

    async fn conditional(
        &self,
        update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> Result<bool, StoreError> {
        match update.send().await.map_err(sdk_error) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

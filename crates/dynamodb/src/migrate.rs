//! `stockbridge migrate`: bring records an earlier release wrote up to this release's layout,
//! where the new release does not do it by itself.
//!
//! Every step is idempotent and conditional on the record not having changed since it was
//! read, so it can run while the functions run, be interrupted and run again. This release's
//! step (docs/deploy.md "Upgrading a live stack"): with a retention (`RETENTION_DAYS`), closed
//! orders, ledger entries and findings written before it get their `expires_at` (otherwise
//! they are kept for good). The sweeper's index needs nothing: it is keyed on attributes
//! every release wrote.

use stockbridge_app::ports::StoreError;
use stockbridge_domain::Timestamp;

use crate::{Attrs, DynamoStore, get_n, get_s, n, parse_order, sdk_error};

/// What a migration found and changed (with `dry_run`, would change).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MigrationReport {
    /// Records read.
    pub scanned: u64,
    /// Records given an expiry.
    pub expiries_set: u64,
    /// Records that changed between the read and the update (left to the functions).
    pub changed_meanwhile: u64,
    /// Records that could not be read (logged with their key, left as they are).
    pub unreadable: u64,
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
            let at = match self.missing_expiry(&item) {
                Ok(Some(at)) => at,
                Ok(None) => continue,
                // One bad record must not stop the rest (nor every rerun at the same place).
                Err(e) => {
                    tracing::warn!(error = %e, "a record migrate cannot read: left as it is");
                    report.unreadable += 1;
                    continue;
                }
            };
            report.expiries_set += 1;
            if !dry_run && !self.set_expiry(&item, at).await? {
                report.changed_meanwhile += 1;
            }
        }
        Ok(report)
    }

    /// The expiry (epoch seconds) a record written before the retention should carry.
    fn missing_expiry(&self, a: &Attrs) -> Result<Option<i64>, StoreError> {
        let Some(r) = self.retention.filter(|_| !a.contains_key("expires_at")) else {
            return Ok(None);
        };
        match a
            .get("kind")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
        {
            Some("order") => Ok(r.order_expires_at(&parse_order(a)?)),
            Some("ledger" | "discrepancy") => {
                let at = Timestamp(get_n(a, "at", get_s(a, "pk", "?")?)?);
                Ok(Some(r.expires_at(at)))
            }
            _ => Ok(None),
        }
    }

    /// Sets the expiry unless the record changed since it was read; whether it did.
    async fn set_expiry(&self, a: &Attrs, at: i64) -> Result<bool, StoreError> {
        let key: Attrs = ["pk", "sk"]
            .iter()
            .filter_map(|k| a.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression("SET expires_at = :x")
            .expression_attribute_values(":x", n(at));
        let update = match a.get("updated_at") {
            // An order rewritten meanwhile carries its own expiry (or is open again).
            Some(u) => update
                .condition_expression("attribute_not_exists(expires_at) AND updated_at = :u")
                .expression_attribute_values(":u", u.clone()),
            None => update
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(expires_at)"),
        };
        match update.send().await.map_err(sdk_error) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

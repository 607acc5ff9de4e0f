//! Housekeeping: the index the sweeper pages through, and what the table's TTL deletes.
//!
//! # Pending holds: an index on what every release writes
//! A checkout hold's order carries `status` and `hold_expires_at` (ms); no other record has
//! both. The global secondary index [`PENDING_HOLDS_INDEX`] (partition `status`, sort
//! `hold_expires_at`, keys only) therefore holds the holds, and its `pending` partition exactly
//! the pending ones, earliest expiry first: the sweeper reads the expired ones page by page
//! however large the table grows. Because both attributes were written by every release,
//! holds an earlier release placed are in the index, an old and a new release can run side by
//! side, and a rollback loses nothing. One partition takes about 1,000 writes a second and a
//! hold writes it twice (placed, settled): 25 times the checkout's default Stripe budget of 20
//! PaymentIntents a second. The index is eventually consistent: a hold settled a moment ago
//! may still be listed, and its release then finds it settled (`raced`).
//!
//! While the index does not exist or is still being built (an upgraded table: DynamoDB
//! answers that it cannot read a backfilling index), the sweeper falls back to the earlier
//! release's filtered scan of the whole table, in one page, and says so in its log.
//!
//! # Retention (`RETENTION_DAYS`, the table's TTL on `expires_at`, epoch seconds)
//! - A closed order ([`OrderRecord::is_closed`]) expires `RETENTION_DAYS` after its last
//!   change; an open one (a hold, a delayed payment, a refund due, a capture for a person)
//!   never does. The order is also the record that an event was applied, so the minimum,
//!   [`MIN_RETENTION_DAYS`], outlives Stripe's 30 days of event retention and redelivery: no
//!   event can arrive for an order that is gone.
//! - Ledger entries and the reconciler's findings expire `RETENTION_DAYS` after they were made.
//! - Rate-limit counters expire an hour after their window (`counters.rs`).
//! - Kept for good: catalog items, product details and mappings, links, parked events (a
//!   person resolves them), checkpoints, the cursor and operation records (one per `stock
//!   set`: tiny, and they keep a rerun from applying twice).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use stockbridge_app::ports::{HoldKey, HoldPage, StoreError};
use stockbridge_domain::{OrderId, OrderRecord, OrderStatus, Timestamp};

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use tracing::{error, warn};

use crate::{Attrs, DynamoStore, build, corrupt, get_s, key, n, order_pk, s, sdk_error};

/// The index of holds by status and expiry.
pub const PENDING_HOLDS_INDEX: &str = "pending-holds";
/// The index's partition key attribute: the order's status.
const STATUS_ATTR: &str = "status";
/// The index's sort key attribute (the hold's expiry, ms).
const DUE_ATTR: &str = "hold_expires_at";
/// The shortest retention: longer than Stripe keeps and redelivers events (30 days).
pub const MIN_RETENTION_DAYS: u32 = 35;

/// How long closed orders, ledger entries and findings are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    days: u32,
}

/// A retention shorter than [`MIN_RETENTION_DAYS`].
#[derive(Debug, thiserror::Error)]
#[error(
    "a retention of {0} days is too short: closed orders are also the record that their events were applied, and Stripe may deliver an event for 30 days (use 0 to keep everything, or at least {MIN_RETENTION_DAYS})"
)]
pub struct RetentionTooShort(pub u32);

impl Retention {
    /// `days` of retention; `0` keeps everything (`None`).
    ///
    /// # Errors
    /// [`RetentionTooShort`] under [`MIN_RETENTION_DAYS`].
    pub fn days(days: u32) -> Result<Option<Self>, RetentionTooShort> {
        match days {
            0 => Ok(None),
            d if d < MIN_RETENTION_DAYS => Err(RetentionTooShort(d)),
            d => Ok(Some(Self { days: d })),
        }
    }

    /// The longest look back over Stripe's history that cannot meet an order the table no
    /// longer has (the retention less five days), in hours: the reconciler's session check
    /// (`RECONCILER_SESSION_HOURS`, `--session-hours`) is held to it.
    pub fn max_lookback_hours(self) -> u32 {
        self.days.saturating_sub(5).saturating_mul(24)
    }

    /// An order's TTL: only a closed one expires, counted from its last change.
    pub fn order_expires_at(self, r: &OrderRecord) -> Option<i64> {
        r.is_closed().then(|| self.expires_at(r.updated_at))
    }

    /// The TTL (epoch seconds) of a record made or last changed at `at`.
    pub fn expires_at(self, at: Timestamp) -> i64 {
        at.0.div_euclid(1000) + i64::from(self.days) * 86_400
    }
}

/// Adds the order's housekeeping attributes: a hold's expiry (with `status`, the index's
/// key), the TTL once it is closed.
pub(crate) fn order_housekeeping(a: &mut Attrs, r: &OrderRecord, retention: Option<Retention>) {
    if let Some(h) = &r.hold {
        a.insert(DUE_ATTR.into(), n(h.expires_at.0));
    }
    if let Some(at) = retention.and_then(|ret| ret.order_expires_at(r)) {
        a.insert("expires_at".into(), n(at));
    }
}

/// The index, for `stockbridge table create` (template.yaml declares the same).
pub(crate) fn pending_holds_index()
-> Result<(GlobalSecondaryIndex, [AttributeDefinition; 2]), StoreError> {
    let el = |name: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
    };
    let index = GlobalSecondaryIndex::builder()
        .index_name(PENDING_HOLDS_INDEX)
        .key_schema(build(el(STATUS_ATTR, KeyType::Hash))?)
        .key_schema(build(el(DUE_ATTR, KeyType::Range))?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build();
    let def = |name: &str, t| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(t)
            .build()
    };
    Ok((
        build(index)?,
        [
            build(def(STATUS_ATTR, ScalarAttributeType::S))?,
            build(def(DUE_ATTR, ScalarAttributeType::N))?,
        ],
    ))
}

fn index_unusable(e: &impl ProvideErrorMetadata) -> bool {
    matches!(
        e.code(),
        Some("ValidationException" | "ResourceNotFoundException")
    ) && e
        .message()
        .is_some_and(|m| m.to_ascii_lowercase().contains("index"))
}

fn hold_key(a: &Attrs) -> Result<HoldKey, StoreError> {
    let pk = get_s(a, "pk", "?")?;
    let id = pk
        .strip_prefix("ORDER#")
        .ok_or_else(|| corrupt(pk, "an index entry that is not an order"))?;
    Ok(HoldKey {
        expires_at: Timestamp(crate::get_n(a, DUE_ATTR, pk)?),
        order_id: OrderId::parse(id).map_err(|e| corrupt(pk, e.to_string()))?,
    })
}

impl DynamoStore {
    /// One page of expired pending holds from the index; while there is no usable index (see
    /// the module doc), every one from a filtered scan, as one page.
    pub(crate) async fn expired_holds_page(
        &self,
        now: Timestamp,
        after: Option<&HoldKey>,
        limit: u32,
    ) -> Result<HoldPage, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(PENDING_HOLDS_INDEX)
            .key_condition_expression("#status = :pending AND #due <= :now")
            .expression_attribute_names("#status", STATUS_ATTR)
            .expression_attribute_names("#due", DUE_ATTR)
            .expression_attribute_values(":pending", s(OrderStatus::Pending.as_str()))
            .expression_attribute_values(":now", n(now.0))
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX));
        if let Some(k) = after {
            let mut start = key(order_pk(&k.order_id), "ORDER");
            start.insert(STATUS_ATTR.into(), s(OrderStatus::Pending.as_str()));
            start.insert(DUE_ATTR.into(), n(k.expires_at.0));
            query = query.set_exclusive_start_key(Some(start));
        }
        let out = match query.send().await {
            Ok(out) => out,
            // Still backfilling ("Cannot read from backfilling global secondary index", a
            // ValidationException) or not there (ResourceNotFoundException naming the index):
            // the scan finds every hold meanwhile.
            Err(e) if after.is_none() && index_unusable(&e) => {
                let message = e.message().unwrap_or_default();
                if message.to_ascii_lowercase().contains("backfilling") {
                    warn!(
                        index = PENDING_HOLDS_INDEX,
                        message, "the index is still being built: scanning the table instead"
                    );
                } else {
                    // Holds are still released, but every minute at the cost of a scan: the
                    // stack's table lacks what template.yaml declares (`stockbridge preflight`).
                    error!(
                        index = PENDING_HOLDS_INDEX,
                        message, "the table has no usable pending-holds index: scanning it instead"
                    );
                }
                return self.expired_holds_by_scan(now).await;
            }
            Err(e) => return Err(sdk_error(e)),
        };
        let holds = out
            .items()
            .iter()
            .map(hold_key)
            .collect::<Result<Vec<_>, _>>()?;
        let next = match out.last_evaluated_key() {
            Some(last) if !last.is_empty() => Some(hold_key(last)?),
            _ => None,
        };
        Ok(HoldPage { holds, next })
    }

    /// The earlier release's listing: every pending hold due by `now`, in one page (a
    /// consistent scan of the whole table).
    async fn expired_holds_by_scan(&self, now: Timestamp) -> Result<HoldPage, StoreError> {
        let scan = self
            .client
            .scan()
            .table_name(&self.table)
            .expression_attribute_names("#status", "status")
            .filter_expression("kind = :order AND #status = :pending AND hold_expires_at <= :now")
            .expression_attribute_values(":order", s("order"))
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":now", n(now.0))
            .consistent_read(true);
        let mut holds = crate::scan_all(scan)
            .await?
            .iter()
            .map(hold_key)
            .collect::<Result<Vec<_>, _>>()?;
        holds.sort();
        Ok(HoldPage { holds, next: None })
    }
}

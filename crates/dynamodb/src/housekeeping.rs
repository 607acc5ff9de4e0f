//! Housekeeping: the index the sweeper pages through, and what the table's TTL deletes.
//!
//! # Pending holds: a sparse index
//! Only a checkout hold still `pending` carries `hold_queue` (always [`HOLD_QUEUE`]); writing the
//! order in any other state drops it (orders are written whole). The global secondary index
//! [`PENDING_HOLDS_INDEX`] (partition `hold_queue`, sort `hold_expires_at` in ms, keys only)
//! therefore holds exactly the pending holds, earliest expiry first, and the sweeper reads
//! the expired ones page by page however large the table grows. One partition value is
//! enough: an index partition takes about 1,000 writes a second and a hold writes it twice
//! (placed, settled), 25 times the checkout's default Stripe budget of 20 PaymentIntents a
//! second. The index is eventually consistent: a hold settled a moment ago may still be
//! listed, and its release then finds it settled (`raced`).
//!
//! # Upgrading a table from before the index
//! Holds placed by an earlier release have no `hold_queue`. The first sweep of this release
//! records when the index began (`pk = SCHEMA`, `sk = SCHEMA`, `holds_indexed_since`); until
//! every hold an earlier release could have placed has expired ([`LEGACY_HOLD_MS`] later), the
//! sweeper lists expired holds with the earlier release's filtered scan, which finds both kinds.
//! A table created by `stockbridge table create` starts indexed. Nothing to run by hand.
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

use crate::{Attrs, DynamoStore, build, corrupt, get_s, key, n, order_pk, s, sdk_error};

/// The sparse index of pending holds.
pub const PENDING_HOLDS_INDEX: &str = "pending-holds";
/// The index's partition key attribute and its one value.
const QUEUE_ATTR: &str = "hold_queue";
/// The value of `hold_queue`.
pub const HOLD_QUEUE: &str = "pending";
/// The index's sort key attribute (the hold's expiry, ms).
const DUE_ATTR: &str = "hold_expires_at";
/// The longest hold an earlier release could place (`CHECKOUT_HOLD_SECONDS` is at most a day),
/// plus an hour for old function versions still running during the deploy.
pub const LEGACY_HOLD_MS: i64 = (86_400 + 3_600) * 1000;
/// The shortest retention: longer than Stripe keeps and redelivers events (30 days).
pub const MIN_RETENTION_DAYS: u32 = 35;

const SCHEMA_PK: &str = "SCHEMA";

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

    /// The TTL (epoch seconds) of a record made or last changed at `at`.
    pub fn expires_at(self, at: Timestamp) -> i64 {
        at.0.div_euclid(1000) + i64::from(self.days) * 86_400
    }
}

/// Adds the order's housekeeping attributes: the index key while it is a pending hold, the
/// TTL once it is closed.
pub(crate) fn order_housekeeping(a: &mut Attrs, r: &OrderRecord, retention: Option<Retention>) {
    if let Some(h) = &r.hold {
        a.insert(DUE_ATTR.into(), n(h.expires_at.0));
        if r.status == OrderStatus::Pending {
            a.insert(QUEUE_ATTR.into(), s(HOLD_QUEUE));
        }
    }
    if let Some(ret) = retention.filter(|_| r.is_closed()) {
        a.insert("expires_at".into(), n(ret.expires_at(r.updated_at)));
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
        .key_schema(build(el(QUEUE_ATTR, KeyType::Hash))?)
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
            build(def(QUEUE_ATTR, ScalarAttributeType::S))?,
            build(def(DUE_ATTR, ScalarAttributeType::N))?,
        ],
    ))
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
    /// One page of expired pending holds: from the index, or during the upgrade window (see
    /// the module doc) from a filtered scan of the whole table, as one page.
    pub(crate) async fn expired_holds_page(
        &self,
        now: Timestamp,
        after: Option<&HoldKey>,
        limit: u32,
    ) -> Result<HoldPage, StoreError> {
        if after.is_none() && now.0 < self.holds_indexed_since(now).await? + LEGACY_HOLD_MS {
            return self.expired_holds_by_scan(now).await;
        }
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(PENDING_HOLDS_INDEX)
            .key_condition_expression("#q = :q AND #due <= :now")
            .expression_attribute_names("#q", QUEUE_ATTR)
            .expression_attribute_names("#due", DUE_ATTR)
            .expression_attribute_values(":q", s(HOLD_QUEUE))
            .expression_attribute_values(":now", n(now.0))
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX));
        if let Some(k) = after {
            let mut start = key(order_pk(&k.order_id), "ORDER");
            start.insert(QUEUE_ATTR.into(), s(HOLD_QUEUE));
            start.insert(DUE_ATTR.into(), n(k.expires_at.0));
            query = query.set_exclusive_start_key(Some(start));
        }
        let out = query.send().await.map_err(sdk_error)?;
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

    /// When this table's holds began to be indexed (ms): recorded by the first sweep that
    /// needs it, so an upgraded table keeps the scan for a day.
    async fn holds_indexed_since(&self, now: Timestamp) -> Result<i64, StoreError> {
        let schema = key(SCHEMA_PK.into(), SCHEMA_PK);
        if let Some(a) = self.get_consistent(schema.clone()).await? {
            return crate::get_n(&a, "holds_indexed_since", SCHEMA_PK);
        }
        self.record_holds_indexed_since(now).await?;
        Ok(now.0)
    }

    /// Records when the index began, unless recorded already (the first writer wins).
    pub(crate) async fn record_holds_indexed_since(&self, at: Timestamp) -> Result<(), StoreError> {
        let mut item = key(SCHEMA_PK.into(), SCHEMA_PK);
        item.insert("kind".into(), s("schema"));
        item.insert("holds_indexed_since".into(), n(at.0));
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(sdk_error);
        match r {
            Ok(_) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The earlier release's listing: every pending hold due by `now`, in one page.
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

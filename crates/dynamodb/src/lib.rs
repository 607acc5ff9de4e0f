//! DynamoDB adapter: orders, stock and the ledger in one table.
//!
//! # Layout (single-table design, keys `pk` / `sk`, both strings)
//! | record | pk | sk |
//! |---|---|---|
//! | catalog item (stock) | `ITEM#{store_id}#{product_id}` | `ITEM` |
//! | ledger entry | `ITEM#{store_id}#{product_id}` | `LEDGER#{version:020}` |
//! | shard of a spread product (`shards.rs`) | `SHARD#{store_id}#{product_id}#{index}` | `SHARD` |
//! | a shard's ledger entry | `SHARD#{store_id}#{product_id}#{index}` | `LEDGER#{version:020}` |
//! | order | `ORDER#{checkout_session_id}` | `ORDER` |
//! | product details (merchandising) | `PRODUCT#{product_id}` | `DETAILS` |
//! | its Stripe mapping | `PRODUCT#{product_id}` | `STRIPE` |
//! | replay cursor | `CURSOR#stripe-events` | `CURSOR` |
//! | named checkpoint (backfill, last reconcile) | `CHECKPOINT#{name}` | `CHECKPOINT` |
//! | discrepancy found by the reconciler | `RECON#{yyyy-mm-dd}` | `{ms:013}#{subject}` |
//! | parked event or repair | `PARKED` | `{kind}:{id}` |
//! | a payment link's store | `LINK#{payment_link_id}` | `LINK` |
//! | a link stockbridge made: its product and unit price | `LINK#{payment_link_id}` | `TERMS` |
//! | the operator's pause switches | `CONTROL` | `CONTROL` |
//! | a store's settings (`store returns`) | `STORE#{store_id}` | `SETTINGS` |
//! | a counter's window (checkout caps, the shared Stripe budget) | `COUNTER#{key}` | `WINDOW#{start ms:020}` |
//! | operation record (`stock set --op-id`) | `OPERATION#{id}` | `OPERATION` |
//! | an address on a product's waitlist (`waitlist.rs`) | `WAITLIST#{store_id}#{product_id}` | `EMAIL#{email key}` |
//! | the last restock announced to it | `WAITLIST#{store_id}#{product_id}` | `ANNOUNCED` |
//! | an address's waitlists (for erasure) | `WAITER#{email key}` | `{store_id}#{product_id}` |
//! | a merchant's restock to announce | `RESTOCK#{store_id}#{product_id}#{version}` | `RESTOCK` |
//!
//! Index `pending-holds`: partition `status`, sort `hold_expires_at` (checkout holds only);
//! TTL on `expires_at` (`housekeeping.rs`).
//!
//! Ids never contain `#` (the domain refuses it), so keys cannot collide. A decision's write set
//! becomes ONE `TransactWriteItems`: the order put (conditional on absence or on its previous
//! status), one conditional update per item (`version = :seen`), a condition check per item only
//! read, and one ledger put per movement. Any failed condition is [`StoreError::Conflict`].
//! The hot path's simple orders are a take instead: one conditional `UpdateItem` of the item
//! that leaves a mark (attributes `t{hash}v|a|h` on the item), then the order and its ledger
//! entry in one transaction of their own (`takes.rs`).

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, KeySchemaElement, KeyType,
    KeysAndAttributes, Put, ScalarAttributeType, StreamSpecification, StreamViewType,
    TransactWriteItem, Update,
};
use stockbridge_app::ports::{Controls, InventoryStore, StoreError};
use stockbridge_domain::{
    CatalogItem, Cause, CauseKind, Items, LedgerEntry, OrderId, OrderRecord, OrderStatus,
    OrderWrite, PaymentLinkId, ProductId, RefundId, StoreId, StripeEventId, Timestamp, WriteSet,
};
use tracing::debug;

mod alerts;
mod catalog_store;
mod codec;
mod counters;
mod housekeeping;
mod inventory_store;
mod migrate;
mod records;
mod settings;
mod shards;
mod takes;
mod waitlist;

use codec::*;
pub use housekeeping::{MIN_RETENTION_DAYS, PENDING_HOLDS_INDEX, Retention, RetentionTooShort};
pub use migrate::MigrationReport;

type Attrs = HashMap<String, AttributeValue>;

/// The DynamoDB store.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// The operator's switches as last read, and when: read again after [`CONTROLS_TTL`].
    controls: std::sync::Arc<std::sync::Mutex<Option<(std::time::Instant, Controls)>>>,
    /// How long closed orders, ledger entries and findings are kept (`None`: for good).
    retention: Option<Retention>,
    /// Link terms as read, and when (see [`LINK_TERMS_UNKNOWN_TTL`]).
    link_terms: std::sync::Arc<std::sync::Mutex<LinkTermsCache>>,
    /// Marks of recorded takes to remove with the next take of their item (`takes.rs`), by
    /// item key.
    recorded_takes: std::sync::Arc<std::sync::Mutex<HashMap<String, Vec<takes::MarkNames>>>>,
}

type LinkTermsCache =
    HashMap<PaymentLinkId, (std::time::Instant, Option<stockbridge_domain::LinkTerms>)>;

/// How long a function trusts a link's terms once read. The catalog sync writes the same
/// terms for a link id every time (its price never changes; a new price gets a new link), so
/// this bounds only how late a function would see terms withdrawn. Orders from a warm function
/// cost no read for them.
pub const LINK_TERMS_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// That a link has no terms is read again after this long: the catalog sync may record them.
pub const LINK_TERMS_UNKNOWN_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// Links remembered at most (then the memory starts over).
const LINK_TERMS_CACHED: usize = 10_000;

/// How long a function trusts the switches it read (`stockbridge pause` takes effect within it).
pub const CONTROLS_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// The operator's switches: `pk = CONTROL`, `sk = CONTROL`, one boolean attribute each.
const CONTROL_PK: &str = "CONTROL";

fn other<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::Other(Box::new(e))
}

/// Maps an SDK error: throttling, 5xx and a write refused because a transaction holds its item
/// (`TransactionConflictException`, which the SDK does not retry) are retryable, the rest is not.
fn sdk_error<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = e.code().unwrap_or_default().to_owned();
    let retryable = matches!(
        e,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    ) || matches!(
        code.as_str(),
        "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "TransactionInProgressException"
            | "TransactionConflictException"
    );
    let message = format!("{code}: {}", e.message().unwrap_or("no message"));
    let boxed: Box<dyn std::error::Error + Send + Sync> = match e {
        SdkError::ServiceError(se) => Box::new(se.into_err()),
        other => Box::new(std::io::Error::other(format!(
            "{message} ({})",
            aws_sdk_dynamodb::error::DisplayErrorContext(&other)
        ))),
    };
    if code == "ConditionalCheckFailedException" {
        return StoreError::Conflict;
    }
    if code == "ResourceNotFoundException" {
        return StoreError::Other(
            format!("{message}: the table does not exist (create it with `stockbridge table create`, or deploy template.yaml)").into(),
        );
    }
    if retryable {
        StoreError::Unavailable(boxed)
    } else {
        StoreError::Other(boxed)
    }
}

impl DynamoStore {
    /// A store on `table`, with a client built from the standard AWS configuration
    /// (`AWS_REGION`, `AWS_ENDPOINT_URL_DYNAMODB`, credentials).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            controls: std::sync::Arc::default(),
            retention: None,
            link_terms: std::sync::Arc::default(),
            recorded_takes: std::sync::Arc::default(),
        }
    }

    /// The same store, writing a TTL (`expires_at`) on closed orders, ledger entries and the
    /// reconciler's findings (see `housekeeping.rs`).
    #[must_use]
    pub fn with_retention(mut self, retention: Option<Retention>) -> Self {
        self.retention = retention;
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table (on-demand, keys `pk`/`sk`) if it does not exist, and waits until it
    /// is active. Returns whether it was created.
    ///
    /// # Errors
    /// [`StoreError`] when the call fails.
    pub async fn create_table(&self) -> Result<bool, StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let keyel = |name: &str, t| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(t)
                .build()
        };
        let (index, [queue, due]) = housekeeping::pending_holds_index()?;
        let r = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(build(attr("pk"))?)
            .attribute_definitions(build(attr("sk"))?)
            .key_schema(build(keyel("pk", KeyType::Hash))?)
            .key_schema(build(keyel("sk", KeyType::Range))?)
            .global_secondary_indexes(index)
            .attribute_definitions(queue)
            .attribute_definitions(due)
            // Keys only: the catalog-sync pipe reads the product id and re-reads the rest.
            .stream_specification(build(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::KeysOnly)
                    .build(),
            )?)
            .send()
            .await;
        match r {
            Ok(_) => {
                self.wait_until_active().await?;
                // What the table's TTL deletes (housekeeping.rs), as template.yaml declares.
                self.client
                    .update_time_to_live()
                    .table_name(&self.table)
                    .time_to_live_specification(build(
                        aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                            .attribute_name("expires_at")
                            .enabled(true)
                            .build(),
                    )?)
                    .send()
                    .await
                    .map_err(sdk_error)?;
                Ok(true)
            }
            Err(e) if e.code() == Some("ResourceInUseException") => Ok(false),
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn wait_until_active(&self) -> Result<(), StoreError> {
        for _ in 0..120 {
            let d = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(sdk_error)?;
            let status = d.table().and_then(|t| t.table_status());
            if status == Some(&aws_sdk_dynamodb::types::TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        Err(StoreError::Unavailable(
            format!("table {} is not active after 2 minutes", self.table).into(),
        ))
    }

    /// The ledger of one item, oldest first.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn ledger(
        &self,
        store: &StoreId,
        product: &ProductId,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :ledger)")
            .expression_attribute_values(":pk", s(item_pk(store, product)))
            .expression_attribute_values(":ledger", s("LEDGER#"))
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(a) = pages.next().await {
            out.push(parse_ledger(&a.map_err(sdk_error)?)?);
        }
        Ok(out)
    }

    /// Reads several orders.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn orders(&self, ids: &[OrderId]) -> Result<Vec<OrderRecord>, StoreError> {
        let keys: Vec<Attrs> = ids.iter().map(|o| key(order_pk(o), "ORDER")).collect();
        let mut out = Vec::new();
        for a in self.batch_get(keys).await? {
            out.push(parse_order(&a)?);
        }
        out.sort_by_key(|o| o.created_at);
        Ok(out)
    }

    async fn batch_get(&self, keys: Vec<Attrs>) -> Result<Vec<Attrs>, StoreError> {
        let mut out = Vec::new();
        for chunk in keys.chunks(100) {
            let mut pending = Some(build(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(true)
                    .build(),
            )?);
            let mut attempt = 0u32;
            while let Some(req) = pending.take() {
                let r = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, req)
                    .send()
                    .await
                    .map_err(sdk_error)?;
                if let Some(items) = r.responses().and_then(|m| m.get(&self.table)) {
                    out.extend(items.iter().cloned());
                }
                pending = r
                    .unprocessed_keys()
                    .and_then(|m| m.get(&self.table))
                    .filter(|k| !k.keys().is_empty())
                    .cloned();
                if pending.is_some() {
                    attempt += 1;
                    if attempt > 8 {
                        return Err(StoreError::Unavailable(
                            "DynamoDB left keys unprocessed after 8 attempts".into(),
                        ));
                    }
                    // DynamoDB asks for backoff on unprocessed keys.
                    tokio::time::sleep(std::time::Duration::from_millis(10u64 << attempt.min(6)))
                        .await;
                }
            }
        }
        Ok(out)
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        let r = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) =
                    e.as_service_error()
                {
                    let codes: Vec<&str> = c.cancellation_reasons().iter().filter_map(|r| r.code()).collect();
                    debug!(?codes, "transaction cancelled");
                    if codes.iter().all(|c| matches!(*c, "None" | "ConditionalCheckFailed" | "TransactionConflict")) {
                        return Err(StoreError::Conflict);
                    }
                    if codes.iter().any(|c| matches!(*c, "ThrottlingError" | "ProvisionedThroughputExceeded")) {
                        return Err(StoreError::Unavailable(format!("transaction throttled: {codes:?}").into()));
                    }
                }
                if e.code() == Some("TransactionConflictException") {
                    return Err(StoreError::Conflict);
                }
                Err(sdk_error(e))
            }
        }
    }
}

impl stockbridge_app::ports::ControlStore for DynamoStore {
    async fn set_control(
        &self,
        control: stockbridge_app::ports::Control,
        paused: bool,
    ) -> Result<(), StoreError> {
        // One attribute per switch, set on its own: no read-modify-write to lose another's.
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(CONTROL_PK.to_owned(), CONTROL_PK)))
            .update_expression("SET #k = :k, #c = :c")
            .expression_attribute_names("#k", "kind")
            .expression_attribute_names("#c", control.attribute())
            .expression_attribute_values(":k", s("control"))
            .expression_attribute_values(":c", AttributeValue::Bool(paused))
            .send()
            .await
            .map_err(sdk_error)?;
        *self.controls.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }
}

impl DynamoStore {
    /// Every order matching `condition` (its values already on `scan`), of one store or all: a
    /// filtered scan of the whole table.
    async fn orders_where(
        &self,
        scan: aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder,
        condition: &str,
        store_id: Option<&StoreId>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let scan = scan
            .table_name(&self.table)
            .expression_attribute_values(":order", s("order"));
        let scan = match store_id {
            Some(store) => scan
                .filter_expression(format!(
                    "kind = :order AND {condition} AND store_id = :store"
                ))
                .expression_attribute_values(":store", s(store.as_str())),
            None => scan.filter_expression(format!("kind = :order AND {condition}")),
        };
        scan_all(scan).await?.iter().map(parse_order).collect()
    }

    /// A filtered scan for the orders in one status (of one store, or all).
    async fn orders_in_status(
        &self,
        status: OrderStatus,
        store_id: Option<&StoreId>,
        consistent: bool,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let scan = self
            .client
            .scan()
            .consistent_read(consistent)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.as_str()));
        self.orders_where(scan, "#status = :status", store_id).await
    }

    /// Reads one record, strongly consistent.
    async fn get_consistent(&self, k: Attrs) -> Result<Option<Attrs>, StoreError> {
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(k))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(r.item)
    }

    /// Writes one record as it is (no condition).
    async fn put(&self, item: Attrs) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    /// `LINK#{link}` → its store, for sessions that do not say theirs (links attached by
    /// `backfill` or `catalog import` carry no `metadata.store_id`).
    async fn remember_link_stores(
        &self,
        store: &StoreId,
        links: &[PaymentLinkId],
    ) -> Result<(), StoreError> {
        for link in links {
            self.put(link_attrs(link, store)).await?;
        }
        Ok(())
    }
}

/// Every item a scan returns, all pages.
async fn scan_all(
    scan: aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder,
) -> Result<Vec<Attrs>, StoreError> {
    let mut pages = scan.into_paginator().items().send();
    let mut out = Vec::new();
    while let Some(a) = pages.next().await {
        out.push(a.map_err(sdk_error)?);
    }
    Ok(out)
}

impl DynamoStore {
    async fn scan_items(&self, store_id: Option<&StoreId>) -> Result<Vec<CatalogItem>, StoreError> {
        let mut scan = self
            .client
            .scan()
            .table_name(&self.table)
            .expression_attribute_values(":item", s("item"));
        scan = match store_id {
            Some(store) => scan
                .filter_expression("kind = :item AND store_id = :store")
                .expression_attribute_values(":store", s(store.as_str())),
            None => scan.filter_expression("kind = :item"),
        };
        let mut out = Vec::new();
        for a in scan_all(scan).await? {
            out.push(self.with_shards(parse_item(&a)?).await?);
        }
        out.sort_by(|a, b| (&a.store_id, &a.product_id).cmp(&(&b.store_id, &b.product_id)));
        Ok(out)
    }
}

impl stockbridge_app::ports::CatalogReader for DynamoStore {
    async fn all_items(&self) -> Result<Vec<CatalogItem>, StoreError> {
        self.scan_items(None).await
    }

    async fn oversold_orders(
        &self,
        store_id: Option<&StoreId>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        self.orders_in_status(OrderStatus::Oversold, store_id, false)
            .await
    }

    async fn awaiting_orders(
        &self,
        store_id: Option<&StoreId>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        // Delayed payments are rare (bank debits): a filtered scan, like the oversold orders.
        let scan = self
            .client
            .scan()
            .expression_attribute_values(":awaiting", s("awaiting"));
        let awaiting = "payment = :awaiting AND attribute_not_exists(hold_expires_at)";
        self.orders_where(scan, awaiting, store_id).await
    }

    async fn pending_orders(
        &self,
        store_id: Option<&StoreId>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        // Strongly consistent: `stock held --repair` compares against it.
        self.orders_in_status(OrderStatus::Pending, store_id, true)
            .await
    }

    /// From the sparse index of pending holds (`housekeeping.rs`).
    async fn expired_holds(
        &self,
        now: Timestamp,
        after: Option<&stockbridge_app::ports::HoldKey>,
        limit: u32,
    ) -> Result<stockbridge_app::ports::HoldPage, StoreError> {
        self.expired_holds_page(now, after, limit).await
    }

    /// A filtered scan: fine for a store's catalog of thousands of items; a catalog of millions
    /// wants a store index (planned with the reconciler's parallel scan).
    async fn store_items(&self, store_id: &StoreId) -> Result<Vec<CatalogItem>, StoreError> {
        self.scan_items(Some(store_id)).await
    }
}

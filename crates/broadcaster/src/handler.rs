//! The broadcaster's edge: a DynamoDB stream batch in, `batchItemFailures` out.
//!
//! The records are decoded here by hand, not with `aws_lambda_events`' `dynamodb` event: that
//! type needs `serde_dynamo` for whole item images, and a `KEYS_ONLY` record carries two
//! string keys. Records of anything but a stock item (`sk = ITEM`), a spread product's shard
//! (`sk = SHARD`, its product's level changed) or a merchant's restock (`pk = RESTOCKS`:
//! announced to the back-in-stock waitlist, `stockbridge_app::waitlist`) are skipped: the event
//! source mapping's filter normally keeps them out. A record whose key is not an item key of
//! this table cannot be retried into sense: it is logged as an error and skipped (the stock
//! itself is in the table, and the item's next change publishes it).
//!
//! A failed item is reported by the sequence number of its first record in the batch, so
//! Lambda retries the shard from there: every item after it is published again, which is
//! harmless (each message is the level as stored).

use std::collections::HashMap;

use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::Diagnostic;
use serde::Deserialize;
use stockbridge_app::broadcast::{ItemKey, broadcast_levels};
use stockbridge_app::ports::{
    Clock, InventoryStore, LowStockStore, MerchantEvents, StockPublisher, Waitlist,
};
use stockbridge_app::waitlist::{WaitlistLinks, announce_restock};
use stockbridge_bootstrap::Failure;
use stockbridge_domain::{ProductId, StoreId};

/// The fields of a Lambda DynamoDB stream event the broadcaster reads.
#[derive(Debug, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records", default)]
    records: Vec<Record>,
}

#[derive(Debug, Deserialize)]
struct Record {
    #[serde(default)]
    dynamodb: Change,
}

#[derive(Debug, Default, Deserialize)]
struct Change {
    #[serde(rename = "Keys", default)]
    keys: HashMap<String, Attribute>,
    #[serde(rename = "SequenceNumber")]
    sequence_number: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Attribute {
    #[serde(rename = "S")]
    s: Option<String>,
}

impl Change {
    fn key(&self, name: &str) -> Option<&str> {
        self.keys.get(name)?.s.as_deref()
    }
}

/// The item a stock item's partition key (`ITEM#{store}#{product}`) or a shard's
/// (`SHARD#{store}#{product}#{index}`) names.
fn item_of(sk: &str, pk: &str) -> Option<ItemKey> {
    let (store, product) = match sk {
        "ITEM" => pk.strip_prefix("ITEM#")?.split_once('#')?,
        "SHARD" => {
            let (store, rest) = pk.strip_prefix("SHARD#")?.split_once('#')?;
            let (product, index) = rest.rsplit_once('#')?;
            index.parse::<u16>().ok()?;
            (store, product)
        }
        _ => return None,
    };
    Some((StoreId::parse(store).ok()?, ProductId::parse(product).ok()?))
}

/// The restock a pending restock's sort key (`{store}#{product}#{version:020}`, in partition
/// `RESTOCKS`) names.
fn restock_of(sk: &str) -> Option<(StoreId, ProductId, u64)> {
    let (store, rest) = sk.split_once('#')?;
    let (product, version) = rest.rsplit_once('#')?;
    Some((
        StoreId::parse(store).ok()?,
        ProductId::parse(product).ok()?,
        version.parse().ok()?,
    ))
}

/// Announces the batch's restocks to the waitlist (`waitlist`: its links; `None`, it is off and
/// they stay pending). How many could not be announced: they stay pending (alarmed; `stockbridge
/// waitlist announce` retries them) and never hold back the stock levels after them.
async fn announce<S, E>(
    store: &S,
    events: &E,
    waitlist: Option<&WaitlistLinks>,
    event: &StreamEvent,
    now: stockbridge_domain::Timestamp,
) -> usize
where
    S: InventoryStore + Waitlist,
    E: MerchantEvents,
{
    let mut failed = 0;
    for record in &event.records {
        let change = &record.dynamodb;
        if change.key("pk") != Some("RESTOCKS") {
            continue;
        }
        let Some((store_id, product_id, version)) = change.key("sk").and_then(restock_of) else {
            tracing::error!(
                sk = change.key("sk"),
                "a restock record whose key names no item: skipped"
            );
            continue;
        };
        let Some(links) = waitlist else {
            tracing::warn!(%store_id, %product_id, version, "a restock, but the waitlist is off: not announced");
            continue;
        };
        let key = (&store_id, &product_id, version);
        match announce_restock(store, events, links, key, now).await {
            Ok(Some(count)) => {
                tracing::info!(%store_id, %product_id, version, count, "back in stock announced")
            }
            Ok(None) => {}
            Err(e) => {
                failed += 1;
                tracing::error!(error = %e, %store_id, %product_id, version, "back in stock not announced: pending (stockbridge waitlist announce)");
            }
        }
    }
    failed
}

/// Publishes the level of every item the batch changed and reports the first failed record.
///
/// # Errors
/// A [`Diagnostic`] when the event is not a stream batch (Lambda retries the batch, then sends
/// it to the on-failure destination), or when a failed record has no sequence number to
/// report (the whole batch is retried).
pub async fn handle<S, P, E>(
    (store, publisher, events): (&S, &P, &E),
    waitlist: Option<&WaitlistLinks>,
    clock: &impl Clock,
    event: serde_json::Value,
) -> Result<DynamoDbEventResponse, Diagnostic>
where
    S: InventoryStore + LowStockStore + Waitlist,
    P: StockPublisher,
    E: MerchantEvents,
{
    let event: StreamEvent = serde_json::from_value(event).map_err(|e| {
        tracing::error!(error = %e, "not a DynamoDB stream batch");
        Failure::Invalid.diagnostic(&e)
    })?;
    let mut changed: Vec<(ItemKey, Option<&str>)> = Vec::new();
    for record in &event.records {
        let change = &record.dynamodb;
        let Some(sk) = change
            .key("sk")
            .filter(|sk| matches!(*sk, "ITEM" | "SHARD"))
        else {
            continue;
        };
        match change.key("pk").and_then(|pk| item_of(sk, pk)) {
            Some(item) => changed.push((item, change.sequence_number.as_deref())),
            None => tracing::error!(
                pk = change.key("pk"),
                sequence_number = change.sequence_number,
                "a stock record whose key names no item: skipped"
            ),
        }
    }
    let keys: Vec<ItemKey> = changed.iter().map(|(k, _)| k.clone()).collect();
    let report = broadcast_levels(store, publisher, Some(events), &keys).await;
    tracing::info!(
        records = event.records.len(),
        published = report.published,
        gone = report.gone,
        refused = report.refused,
        alerts_failed = report.alerts_failed,
        failed = report.failed.len(),
        "broadcast"
    );
    if report.refused > 0 {
        // CloudWatch embedded metric format: the template alarms on any refused level.
        println!(
            "{}",
            refused_line(report.refused, std::time::SystemTime::now())
        );
    }
    if report.alerts_failed > 0 {
        println!(
            "{}",
            alerts_failed_line(report.alerts_failed, std::time::SystemTime::now())
        );
    }
    let unannounced = announce(store, events, waitlist, &event, clock.now()).await;
    if unannounced > 0 {
        println!(
            "{}",
            count_line(
                "WaitlistAnnouncementsFailed",
                unannounced,
                "back-in-stock announcements not published: pending, retry with `stockbridge waitlist announce`"
            )
        );
    }
    let mut response = DynamoDbEventResponse::default();
    let Some(first_failed) = changed
        .iter()
        .find(|(k, _)| report.failed.iter().any(|(f, _)| f == k))
    else {
        return Ok(response);
    };
    let Some(sequence_number) = first_failed.1 else {
        let e = std::io::Error::other("a failed stock record has no sequence number");
        return Err(Failure::Retryable.diagnostic(&e));
    };
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = Some(sequence_number.to_owned());
    response.batch_item_failures.push(failure);
    Ok(response)
}

/// `n` of `metric`, as one CloudWatch embedded-metric-format line at ERROR with `message`.
fn count_line(metric: &str, n: usize, message: &str) -> String {
    stockbridge_app::metrics::count_line(
        metric,
        n,
        std::time::SystemTime::now(),
        serde_json::json!({"level": "ERROR", "message": message}),
    )
}

/// `n` levels refused for good, as one CloudWatch embedded-metric-format line (namespace
/// `stockbridge`, metric `LevelsRefused`, no dimension).
fn refused_line(n: usize, at: std::time::SystemTime) -> String {
    stockbridge_app::metrics::count_line(
        "LevelsRefused",
        n,
        at,
        serde_json::json!({
            "level": "ERROR",
            "message": "stock levels refused for good: see the log lines before",
        }),
    )
}

/// `n` low-stock alerts that could not go out (pending, published at a later read), as one
/// CloudWatch embedded-metric-format line (metric `LowStockAlertsFailed`, no dimension).
fn alerts_failed_line(n: usize, at: std::time::SystemTime) -> String {
    stockbridge_app::metrics::count_line(
        "LowStockAlertsFailed",
        n,
        at,
        serde_json::json!({
            "level": "ERROR",
            "message": "low-stock alerts not published: pending until the item's next read",
        }),
    )
}

#[cfg(test)]
mod tests;

//! The table's keys and the attribute codecs: every record as DynamoDB stores it and back.
//! Round-trip tests here need no stack.

use super::*;

pub(crate) fn item_pk(store: &StoreId, product: &ProductId) -> String {
    format!("ITEM#{store}#{product}")
}

/// A spread product's shard item (`stockbridge_domain::shard`): its own partition.
pub(crate) fn shard_pk(store: &StoreId, product: &ProductId, index: u16) -> String {
    format!("SHARD#{store}#{product}#{index}")
}

/// The partition of a ledger entry: its item's, or its shard's.
pub(crate) fn ledger_pk(store: &StoreId, product: &ProductId, shard: Option<u16>) -> String {
    shard.map_or_else(|| item_pk(store, product), |i| shard_pk(store, product, i))
}

pub(crate) fn link_pk(link: &PaymentLinkId) -> String {
    format!("LINK#{link}")
}

pub(crate) fn link_attrs(link: &PaymentLinkId, store: &StoreId) -> Attrs {
    let mut item = key(link_pk(link), "LINK");
    item.insert("kind".into(), s("link"));
    item.insert("store_id".into(), s(store.as_str()));
    item
}

pub(crate) fn order_pk(order: &OrderId) -> String {
    format!("ORDER#{order}")
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn links_attr(v: &[PaymentLinkId]) -> AttributeValue {
    AttributeValue::L(v.iter().map(|l| s(l.as_str())).collect())
}

pub(crate) fn key(pk: String, sk: &str) -> Attrs {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

pub(crate) fn corrupt(key: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

pub(crate) fn get_s<'a>(a: &'a Attrs, name: &str, key: &str) -> Result<&'a str, StoreError> {
    a.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| corrupt(key, format!("missing string attribute {name}")))
}

/// The partition of an operator's operation record.
pub(crate) fn operation_pk(op: &str) -> String {
    format!("OPERATION#{op}")
}

/// A number attribute that older records may lack.
pub(crate) fn opt_n<T: std::str::FromStr>(
    a: &Attrs,
    name: &str,
    key: &str,
) -> Result<Option<T>, StoreError> {
    a.get(name).map(|_| get_n(a, name, key)).transpose()
}

pub(crate) fn get_n<T: std::str::FromStr>(
    a: &Attrs,
    name: &str,
    key: &str,
) -> Result<T, StoreError> {
    a.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| corrupt(key, format!("missing or invalid number attribute {name}")))
}

pub(crate) fn get_links(
    a: &Attrs,
    name: &str,
    key: &str,
) -> Result<Vec<PaymentLinkId>, StoreError> {
    let Some(v) = a.get(name) else {
        return Ok(Vec::new());
    };
    let list = v
        .as_l()
        .map_err(|_| corrupt(key, format!("{name} is not a list")))?;
    list.iter()
        .map(|v| {
            v.as_s()
                .ok()
                .and_then(|s| PaymentLinkId::parse(s.as_str()).ok())
                .ok_or_else(|| corrupt(key, format!("{name} holds an invalid link id")))
        })
        .collect()
}

pub(crate) fn parse_item(a: &Attrs) -> Result<CatalogItem, StoreError> {
    let pk = get_s(a, "pk", "?")?.to_owned();
    let bad = |e: stockbridge_domain::IdError| corrupt(&pk, e.to_string());
    Ok(CatalogItem {
        store_id: StoreId::parse(get_s(a, "store_id", &pk)?).map_err(bad)?,
        product_id: ProductId::parse(get_s(a, "product_id", &pk)?).map_err(bad)?,
        name: a
            .get("name")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default(),
        available: get_n(a, "available", &pk)?,
        // Items written before held stock was kept apart have none: 0.
        held: opt_n(a, "held", &pk)?.unwrap_or(0),
        version: get_n(a, "version", &pk)?,
        payment_links: get_links(a, "payment_links", &pk)?,
        deactivated_links: get_links(a, "deactivated_links", &pk)?,
        updated_at: Timestamp(get_n(a, "updated_at", &pk)?),
        // Items written before the boundary existed have none: 0, no boundary.
        managed_since: Timestamp(match a.get("managed_since") {
            None => 0,
            Some(_) => get_n(a, "managed_since", &pk)?,
        }),
        unrecorded_take: None,
        spread: match opt_n::<u16>(a, "shards", &pk)? {
            Some(shards) if shards > 0 => Some(stockbridge_domain::Spread {
                shards,
                epoch: get_n(a, "epoch", &pk)?,
                ..stockbridge_domain::Spread::default()
            }),
            _ => None,
        },
        low_stock: parse_low_stock(a, &pk)?,
    })
}

/// An item's low-stock attributes (`low_stock`: the threshold; `low_stock_low`,
/// `low_stock_crossings`, `low_stock_pending`: its state).
fn parse_low_stock(
    a: &Attrs,
    pk: &str,
) -> Result<Option<stockbridge_domain::low_stock::LowStock>, StoreError> {
    let Some(threshold) = opt_n::<u64>(a, "low_stock", pk)? else {
        return Ok(None);
    };
    Ok(Some(stockbridge_domain::low_stock::LowStock {
        threshold,
        low: a
            .get("low_stock_low")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        crossings: opt_n(a, "low_stock_crossings", pk)?.unwrap_or(0),
        pending: opt_n(a, "low_stock_pending", pk)?,
    }))
}

pub(crate) fn item_attrs(item: &CatalogItem) -> Attrs {
    let mut a = key(item_pk(&item.store_id, &item.product_id), "ITEM");
    a.insert("kind".into(), s("item"));
    a.insert("store_id".into(), s(item.store_id.as_str()));
    a.insert("product_id".into(), s(item.product_id.as_str()));
    a.insert("name".into(), s(item.name.clone()));
    a.insert("available".into(), n(item.available));
    a.insert("held".into(), n(item.held));
    a.insert("version".into(), n(item.version));
    a.insert("payment_links".into(), links_attr(&item.payment_links));
    a.insert(
        "deactivated_links".into(),
        links_attr(&item.deactivated_links),
    );
    a.insert("updated_at".into(), n(item.updated_at.0));
    a.insert("managed_since".into(), n(item.managed_since.0));
    a
}

pub(crate) fn parse_order(a: &Attrs) -> Result<OrderRecord, StoreError> {
    let pk = get_s(a, "pk", "?")?.to_owned();
    let mut record: OrderRecord =
        serde_json::from_str(get_s(a, "record", &pk)?).map_err(|e| corrupt(&pk, e.to_string()))?;
    if let Some(r) = a.get("refund_id").and_then(|v| v.as_s().ok()) {
        record.refund_id =
            Some(RefundId::parse(r.as_str()).map_err(|e| corrupt(&pk, e.to_string()))?);
    }
    Ok(record)
}

pub(crate) fn order_attrs(
    r: &OrderRecord,
    retention: Option<Retention>,
) -> Result<Attrs, StoreError> {
    let mut a = key(order_pk(&r.order_id), "ORDER");
    a.insert("kind".into(), s("order"));
    a.insert("status".into(), s(r.status.as_str()));
    a.insert("payment".into(), s(r.payment.as_str()));
    a.insert("store_id".into(), s(r.store_id.as_str()));
    a.insert(
        "record".into(),
        s(serde_json::to_string(r).map_err(|e| corrupt(r.order_id.as_str(), e.to_string()))?),
    );
    if let Some(id) = &r.refund_id {
        a.insert("refund_id".into(), s(id.as_str()));
    }
    if r.after_sale_revision() > 0 {
        a.insert("after_sale".into(), n(r.after_sale_revision()));
    }
    a.insert("created_at".into(), n(r.created_at.0));
    a.insert("updated_at".into(), n(r.updated_at.0));
    housekeeping::order_housekeeping(&mut a, r, retention);
    Ok(a)
}

pub(crate) fn ledger_attrs(e: &LedgerEntry, retention: Option<Retention>) -> Attrs {
    let mut a = key(
        ledger_pk(&e.store_id, &e.product_id, e.shard),
        &format!("LEDGER#{:020}", e.version),
    );
    if let Some(i) = e.shard {
        a.insert("shard".into(), n(i));
    }
    a.insert("kind".into(), s("ledger"));
    a.insert("store_id".into(), s(e.store_id.as_str()));
    a.insert("product_id".into(), s(e.product_id.as_str()));
    a.insert("version".into(), n(e.version));
    a.insert("delta".into(), n(e.delta));
    a.insert("level".into(), n(e.level));
    a.insert("held".into(), n(e.held));
    if let Some(op) = &e.operation {
        a.insert("operation".into(), s(op.clone()));
    }
    a.insert("cause".into(), s(e.cause.kind.as_str()));
    if let Some(id) = &e.cause.stripe_event_id {
        a.insert("stripe_event_id".into(), s(id.as_str()));
    }
    if let Some(id) = &e.cause.order_id {
        a.insert("order_id".into(), s(id.as_str()));
    }
    if let Some(actor) = &e.cause.actor {
        a.insert("actor".into(), s(actor.clone()));
    }
    a.insert("at".into(), n(e.at.0));
    if let Some(r) = retention {
        a.insert("expires_at".into(), n(r.expires_at(e.at)));
    }
    a
}

pub(crate) fn parse_ledger(a: &Attrs) -> Result<LedgerEntry, StoreError> {
    let pk = get_s(a, "pk", "?")?.to_owned();
    let bad = |e: stockbridge_domain::IdError| corrupt(&pk, e.to_string());
    let opt = |name: &str| a.get(name).and_then(|v| v.as_s().ok()).cloned();
    Ok(LedgerEntry {
        store_id: StoreId::parse(get_s(a, "store_id", &pk)?).map_err(bad)?,
        product_id: ProductId::parse(get_s(a, "product_id", &pk)?).map_err(bad)?,
        version: get_n(a, "version", &pk)?,
        delta: get_n(a, "delta", &pk)?,
        level: get_n(a, "level", &pk)?,
        held: opt_n(a, "held", &pk)?.unwrap_or(0),
        operation: a.get("operation").and_then(|v| v.as_s().ok()).cloned(),
        cause: Cause {
            kind: CauseKind::parse(get_s(a, "cause", &pk)?)
                .ok_or_else(|| corrupt(&pk, "unknown cause"))?,
            stripe_event_id: opt("stripe_event_id")
                .map(StripeEventId::parse)
                .transpose()
                .map_err(bad)?,
            order_id: opt("order_id")
                .map(OrderId::parse)
                .transpose()
                .map_err(bad)?,
            actor: opt("actor"),
        },
        at: Timestamp(get_n(a, "at", &pk)?),
        shard: opt_n(a, "shard", &pk)?,
    })
}

pub(crate) fn build<T, E: std::error::Error + Send + Sync + 'static>(
    r: Result<T, E>,
) -> Result<T, StoreError> {
    r.map_err(other)
}

/// A record kept as one JSON document (`doc`): catalog details, mappings, parked items.
pub(crate) fn parse_doc<T: serde::de::DeserializeOwned>(
    a: &Attrs,
    key: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(get_s(a, "doc", key)?).map_err(|e| corrupt(key, e.to_string()))
}

pub(crate) fn to_doc<T: serde::Serialize>(v: &T, key: &str) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(v)
        .map(s)
        .map_err(|e| corrupt(key, e.to_string()))
}

impl DynamoStore {
    /// A ledger entry as a transaction puts it: only if its version has none yet.
    pub(crate) fn ledger_put(&self, e: &LedgerEntry) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(ledger_attrs(e, self.retention)))
            .condition_expression("attribute_not_exists(pk)");
        Ok(TransactWriteItem::builder()
            .put(build(put.build())?)
            .build())
    }

    /// A decision's item update as the transaction writes it: the whole new state, only if the
    /// item is still at the version and switched-off links the decision read; `then` is added
    /// to the update expression and `and` to the condition.
    pub(crate) fn item_update(
        &self,
        u: &stockbridge_domain::ItemUpdate,
        then: &str,
        and: &str,
    ) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(item_pk(&u.store_id, &u.product_id), "ITEM")))
            .update_expression(format!(
                "SET available = :a, held = :h, version = :v, deactivated_links = :d, \
                 updated_at = :t, managed_since = :m{then}"
            ))
            .condition_expression(format!(
                "version = :seen AND deactivated_links = :seen_links{and}"
            ))
            .expression_attribute_values(":seen_links", links_attr(&u.expected_deactivated_links))
            .expression_attribute_values(":a", n(u.available))
            .expression_attribute_values(":h", n(u.held))
            .expression_attribute_values(":v", n(u.version))
            .expression_attribute_values(":d", links_attr(&u.deactivated_links))
            .expression_attribute_values(":t", n(u.at.0))
            .expression_attribute_values(":m", n(u.managed_since.0))
            .expression_attribute_values(":seen", n(u.expected_version))
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;

/// A boolean attribute of a record, `false` when absent or of another type (switches and
/// settings default to off).
pub(crate) fn flag(item: Option<&Attrs>, name: &str) -> bool {
    item.and_then(|a| a.get(name))
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(false)
}

//! The waitlist's records (`stockbridge_app::ports::Waitlist`):
//!
//! | record | pk | sk |
//! |---|---|---|
//! | an address on a product's list | `WAITLIST#{store}#{product}` | `EMAIL#{email key}` |
//! | the last restock claimed for announcement | `WAITLIST#{store}#{product}` | `ANNOUNCED` |
//! | the lists of an address (for erasure) | `WAITER#{email key}` | `{store}#{product}` |
//! | a restock to announce (written with the stock) | `RESTOCKS` | `{store}#{product}#{version:020}` |
//!
//! An entry and its address record are written together; the address record expires a week
//! after its entry (TTL `expires_at`; DynamoDB deletes expired items within days, not at once),
//! so erasure always finds an entry still in the table. The address itself is only in the entry
//! (`email`), keys hold its hash. Pending restocks share one partition (merchants' restocks are
//! rare): the broadcaster hears of each from the stream, `stockbridge waitlist announce` lists
//! the ones left.

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValue, TransactWriteItem, Update,
};
use stockbridge_app::ports::{
    Announced, Confirmed, EntryPage, StoreError, Waitlist, WaitlistEntry,
};
use stockbridge_domain::{ProductId, Restock, StoreId, Timestamp};

use crate::codec::{build, get_n, get_s, item_pk, key, n, opt_n, s};
use crate::{Attrs, DynamoStore, sdk_error};

fn list_pk(store: &StoreId, product: &ProductId) -> String {
    format!("WAITLIST#{}#{}", store.as_str(), product.as_str())
}

fn entry_key(store: &StoreId, product: &ProductId, email_key: &str) -> Attrs {
    key(list_pk(store, product), &format!("EMAIL#{email_key}"))
}

fn address_key(store: &StoreId, product: &ProductId, email_key: &str) -> Attrs {
    key(
        format!("WAITER#{email_key}"),
        &format!("{}#{}", store.as_str(), product.as_str()),
    )
}

fn announced_key(store: &StoreId, product: &ProductId) -> Attrs {
    key(list_pk(store, product), "ANNOUNCED")
}

/// The partition of the restocks to announce (the broadcaster's stream filter names it).
const RESTOCKS: &str = "RESTOCKS";

/// The key of a restock's record.
pub(crate) fn restock_key(store: &StoreId, product: &ProductId, version: u64) -> Attrs {
    key(
        RESTOCKS.to_owned(),
        &format!("{}#{}#{version:020}", store.as_str(), product.as_str()),
    )
}

/// A restock's record, as `commit` puts it with the stock.
pub(crate) fn restock_attrs(r: &Restock) -> Attrs {
    let mut a = restock_key(&r.store_id, &r.product_id, r.version);
    a.insert("kind".into(), s("restock"));
    a.insert("store_id".into(), s(r.store_id.as_str()));
    a.insert("product_id".into(), s(r.product_id.as_str()));
    a.insert("version".into(), n(r.version));
    a.insert("available".into(), n(r.available));
    a.insert("at".into(), n(r.at.0));
    a
}

fn seconds(t: Timestamp) -> AttributeValue {
    n(t.0.div_euclid(1000))
}

fn parse_entry(a: &Attrs) -> Result<WaitlistEntry, StoreError> {
    let k = "waitlist entry";
    Ok(WaitlistEntry {
        store_id: StoreId::parse(get_s(a, "store_id", k)?.to_owned())
            .map_err(|e| crate::codec::corrupt(k, e.to_string()))?,
        product_id: ProductId::parse(get_s(a, "product_id", k)?.to_owned())
            .map_err(|e| crate::codec::corrupt(k, e.to_string()))?,
        email: get_s(a, "email", k)?.to_owned(),
        confirmed: opt_n(a, "confirmed", k)?,
        joined: Timestamp(get_n(a, "joined", k)?),
    })
}

fn put(item: Attrs) -> aws_sdk_dynamodb::types::builders::PutBuilder {
    Put::builder().set_item(Some(item))
}

impl DynamoStore {
    fn address_put(
        &self,
        e: &WaitlistEntry,
        expires: Timestamp,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut a = address_key(&e.store_id, &e.product_id, &e.email_key());
        a.insert("kind".into(), s("waitlist_address"));
        a.insert("store_id".into(), s(e.store_id.as_str()));
        a.insert("product_id".into(), s(e.product_id.as_str()));
        let week = Timestamp(expires.0 + 7 * 86_400_000);
        a.insert("expires_at".into(), seconds(week));
        let p = put(a).table_name(&self.table);
        Ok(TransactWriteItem::builder().put(build(p.build())?).build())
    }

    async fn get(&self, key: Attrs) -> Result<Option<Attrs>, StoreError> {
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(r.item)
    }

    async fn delete_entry(
        &self,
        store: &StoreId,
        product: &ProductId,
        email_key: &str,
    ) -> Result<bool, StoreError> {
        let old = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(entry_key(store, product, email_key)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(sdk_error)?;
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(address_key(store, product, email_key)))
            .send()
            .await
            .map_err(sdk_error)?;
        // No attributes (or, from some local servers, an empty map): there was none.
        Ok(old.attributes.is_some_and(|a| !a.is_empty()))
    }
}

impl Waitlist for DynamoStore {
    async fn add_entry(
        &self,
        entry: &WaitlistEntry,
        expires: Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        let email_key = entry.email_key();
        let mut a = entry_key(&entry.store_id, &entry.product_id, &email_key);
        a.insert("kind".into(), s("waitlist_entry"));
        a.insert("store_id".into(), s(entry.store_id.as_str()));
        a.insert("product_id".into(), s(entry.product_id.as_str()));
        a.insert("email".into(), s(entry.email.clone()));
        a.insert("joined".into(), n(entry.joined.0));
        a.insert("expires_at".into(), seconds(expires));
        // A confirmed entry stays as it is (unless the TTL is past and not yet applied).
        let p = put(a)
            .table_name(&self.table)
            .condition_expression("attribute_not_exists(confirmed) OR expires_at < :now")
            .expression_attribute_values(":now", seconds(entry.joined));
        let items = vec![
            TransactWriteItem::builder().put(build(p.build())?).build(),
            self.address_put(entry, expires)?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(None),
            Err(StoreError::Conflict) => {
                let found = self
                    .get(entry_key(&entry.store_id, &entry.product_id, &email_key))
                    .await?;
                match found
                    .map(|a| parse_entry(&a))
                    .transpose()?
                    .and_then(|e| e.confirmed)
                {
                    Some(v) => Ok(Some(v)),
                    // Changed in between (removed, or a concurrent join): busy, try again.
                    None => Err(StoreError::Unavailable(
                        "the waitlist entry changed; try again".into(),
                    )),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn confirm_entry(
        &self,
        store: &StoreId,
        product: &ProductId,
        email_key: &str,
        (version, waiting_since): (u64, u64),
        expires: Timestamp,
    ) -> Result<Confirmed, StoreError> {
        let found = self.get(entry_key(store, product, email_key)).await?;
        let Some(entry) = found.map(|a| parse_entry(&a)).transpose()? else {
            return Ok(Confirmed::NoEntry);
        };
        if entry.confirmed.is_some_and(|v| v >= waiting_since) {
            return Ok(Confirmed::AlreadyWaiting);
        }
        let u = Update::builder()
            .table_name(&self.table)
            .set_key(Some(entry_key(store, product, email_key)))
            .update_expression("SET confirmed = :v, expires_at = :e")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":v", n(version))
            .expression_attribute_values(":e", seconds(expires));
        // The item is still at the version read: no restock passed the entry by meanwhile.
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(item_pk(store, product), "ITEM")))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", n(version));
        let items = vec![
            TransactWriteItem::builder()
                .update(build(u.build())?)
                .build(),
            TransactWriteItem::builder()
                .condition_check(build(check.build())?)
                .build(),
            self.address_put(&entry, expires)?,
        ];
        self.transact(items).await.map(|()| Confirmed::Now)
    }

    async fn remove_entry(
        &self,
        store: &StoreId,
        product: &ProductId,
        email_key: &str,
    ) -> Result<bool, StoreError> {
        self.delete_entry(store, product, email_key).await
    }

    async fn erase_address(&self, email_key: &str) -> Result<u32, StoreError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("WAITER#{email_key}")))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut lists = Vec::new();
        while let Some(a) = pages.next().await {
            let a = a.map_err(sdk_error)?;
            let k = "waitlist address";
            lists.push((
                get_s(&a, "store_id", k)?.to_owned(),
                get_s(&a, "product_id", k)?.to_owned(),
            ));
        }
        let mut erased = 0;
        for (store, product) in lists {
            let (Ok(store), Ok(product)) = (StoreId::parse(store), ProductId::parse(product))
            else {
                continue;
            };
            if self.delete_entry(&store, &product, email_key).await? {
                erased += 1;
            }
        }
        Ok(erased)
    }

    async fn confirmed_entries(
        &self,
        store: &StoreId,
        product: &ProductId,
        versions: std::ops::Range<u64>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<EntryPage, StoreError> {
        let mut start = after.map(|a| entry_key(store, product, a));
        let mut page = EntryPage::default();
        loop {
            let r = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :email)")
                .filter_expression("confirmed >= :from AND confirmed < :to")
                .expression_attribute_values(":pk", s(list_pk(store, product)))
                .expression_attribute_values(":email", s("EMAIL#"))
                .expression_attribute_values(":from", n(versions.start))
                .expression_attribute_values(":to", n(versions.end))
                .set_exclusive_start_key(start.take())
                .limit(i32::try_from(limit).unwrap_or(i32::MAX).max(1))
                .consistent_read(true)
                .send()
                .await
                .map_err(sdk_error)?;
            for a in r.items() {
                page.entries.push(parse_entry(a)?);
                if page.entries.len() == limit {
                    page.next = page.entries.last().map(WaitlistEntry::email_key);
                    return Ok(page);
                }
            }
            match r.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(page),
            }
        }
    }

    async fn pending_restock(
        &self,
        store: &StoreId,
        product: &ProductId,
        version: u64,
    ) -> Result<Option<Restock>, StoreError> {
        let a = self.get(restock_key(store, product, version)).await?;
        a.as_ref().map(parse_restock).transpose()
    }

    async fn pending_restocks(&self, limit: usize) -> Result<Vec<Restock>, StoreError> {
        let r = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(RESTOCKS))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX).max(1))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        r.items().iter().map(parse_restock).collect()
    }

    async fn announced(
        &self,
        store: &StoreId,
        product: &ProductId,
    ) -> Result<Announced, StoreError> {
        let Some(a) = self.get(announced_key(store, product)).await? else {
            return Ok(Announced::default());
        };
        let k = "announced restock";
        Ok(Announced {
            version: get_n(&a, "version", k)?,
            from: opt_n(&a, "from_version", k)?.unwrap_or(0),
        })
    }

    async fn claim_restock(&self, restock: &Restock, last: &Announced) -> Result<bool, StoreError> {
        let (store, product) = (&restock.store_id, &restock.product_id);
        let mut u = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(announced_key(store, product)))
            .update_expression("SET kind = :k, version = :v, from_version = :from")
            .expression_attribute_values(":k", s("waitlist_announced"))
            .expression_attribute_values(":v", n(restock.version))
            .expression_attribute_values(":from", n(last.version));
        u = if last.version == 0 {
            u.condition_expression("attribute_not_exists(version)")
        } else {
            u.condition_expression("version = :last")
                .expression_attribute_values(":last", n(last.version))
        };
        match u.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn remove_restock(&self, restock: &Restock) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(restock_key(
                &restock.store_id,
                &restock.product_id,
                restock.version,
            )))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }
}

fn parse_restock(a: &Attrs) -> Result<Restock, StoreError> {
    let k = "restock";
    Ok(Restock {
        store_id: StoreId::parse(get_s(a, "store_id", k)?.to_owned())
            .map_err(|e| crate::codec::corrupt(k, e.to_string()))?,
        product_id: ProductId::parse(get_s(a, "product_id", k)?.to_owned())
            .map_err(|e| crate::codec::corrupt(k, e.to_string()))?,
        version: get_n(a, "version", k)?,
        available: get_n(a, "available", k)?,
        at: Timestamp(get_n(a, "at", k)?),
    })
}

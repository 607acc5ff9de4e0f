//! The merchandising catalog (`CatalogStore`): product details and their Stripe mapping.

use super::*;

/// The merchandising catalog: `pk = PRODUCT#{product_id}` with `sk = DETAILS` (the details, as
/// JSON in `doc`, and `revision`) and `sk = STRIPE` (the Stripe mapping, as JSON in `doc`, and
/// `version`). The table's stream carries every write; the catalog-sync pipe passes on only
/// `sk = DETAILS`, so the sync's own mapping writes never loop back to it.
fn product_pk(product: &ProductId) -> String {
    format!("PRODUCT#{product}")
}

const DETAILS_SK: &str = "DETAILS";
const MAPPING_SK: &str = "STRIPE";

fn entry_of(
    details: Option<&Attrs>,
    mapping: Option<&Attrs>,
    key: &str,
) -> Result<Option<stockbridge_app::ports::CatalogEntry>, StoreError> {
    let Some(d) = details else { return Ok(None) };
    Ok(Some(stockbridge_app::ports::CatalogEntry {
        details: parse_doc(d, key)?,
        mapping: mapping
            .map(|m| parse_doc(m, key))
            .transpose()?
            .unwrap_or_default(),
    }))
}

impl DynamoStore {
    /// Puts `item` if no record has its key (`expected` is `None`) or the stored `field` is
    /// still `expected`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the condition fails.
    async fn put_versioned(
        &self,
        item: Attrs,
        field: &str,
        expected: Option<u64>,
    ) -> Result<(), StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let put = match expected {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(v) => put
                .condition_expression("#f = :v")
                .expression_attribute_names("#f", field)
                .expression_attribute_values(":v", n(v)),
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    /// Reads the mappings of the products in `details` and pairs them.
    async fn with_mappings(
        &self,
        details: Vec<Attrs>,
    ) -> Result<HashMap<ProductId, stockbridge_app::ports::CatalogEntry>, StoreError> {
        let mut by_pk: HashMap<String, Attrs> = HashMap::new();
        for d in details {
            let pk = get_s(&d, "pk", "PRODUCT")?.to_owned();
            by_pk.insert(pk, d);
        }
        let keys = by_pk.keys().map(|pk| key(pk.clone(), MAPPING_SK)).collect();
        let mut mappings: HashMap<String, Attrs> = HashMap::new();
        for m in self.batch_get(keys).await? {
            let pk = get_s(&m, "pk", "PRODUCT")?.to_owned();
            mappings.insert(pk, m);
        }
        let mut out = HashMap::with_capacity(by_pk.len());
        for (pk, d) in &by_pk {
            if let Some(e) = entry_of(Some(d), mappings.get(pk), pk)? {
                out.insert(e.details.product_id.clone(), e);
            }
        }
        Ok(out)
    }
}

impl stockbridge_app::ports::CatalogStore for DynamoStore {
    async fn entry(
        &self,
        product: &ProductId,
    ) -> Result<Option<stockbridge_app::ports::CatalogEntry>, StoreError> {
        let pk = product_pk(product);
        let r = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        let items = r.items();
        let find = |sk: &str| {
            items
                .iter()
                .find(|a| a.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str) == Some(sk))
        };
        entry_of(find(DETAILS_SK), find(MAPPING_SK), &pk)
    }

    async fn entries(
        &self,
        products: &[ProductId],
    ) -> Result<HashMap<ProductId, stockbridge_app::ports::CatalogEntry>, StoreError> {
        let keys = products
            .iter()
            .map(|p| key(product_pk(p), DETAILS_SK))
            .collect();
        let details = self.batch_get(keys).await?;
        self.with_mappings(details).await
    }

    async fn put_details(
        &self,
        details: &stockbridge_domain::ProductDetails,
        expected_revision: Option<u64>,
    ) -> Result<(), StoreError> {
        let pk = product_pk(&details.product_id);
        let mut item = key(pk.clone(), DETAILS_SK);
        item.insert("kind".into(), s("details"));
        item.insert("revision".into(), n(details.revision));
        item.insert("doc".into(), to_doc(details, &pk)?);
        self.put_versioned(item, "revision", expected_revision)
            .await
    }

    async fn save_mapping(
        &self,
        product: &ProductId,
        mapping: &stockbridge_domain::StripeMapping,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let pk = product_pk(product);
        let mut item = key(pk.clone(), MAPPING_SK);
        item.insert("kind".into(), s("stripe_mapping"));
        item.insert("version".into(), n(mapping.version));
        item.insert("doc".into(), to_doc(mapping, &pk)?);
        self.put_versioned(
            item,
            "version",
            (expected_version > 0).then_some(expected_version),
        )
        .await
    }

    async fn scan_entries(
        &self,
        segment: u32,
        segments: u32,
        start: Option<String>,
    ) -> Result<(Vec<stockbridge_app::ports::CatalogEntry>, Option<String>), StoreError> {
        let mut scan = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("kind = :details")
            .expression_attribute_values(":details", s("details"))
            .limit(500);
        if segments > 1 {
            scan = scan
                .segment(i32::try_from(segment).map_err(other)?)
                .total_segments(i32::try_from(segments).map_err(other)?);
        }
        if let Some(start) = start {
            let (pk, sk) = start
                .split_once('\u{1f}')
                .ok_or_else(|| corrupt("scan position", "not pk<US>sk"))?;
            scan = scan.set_exclusive_start_key(Some(key(pk.to_owned(), sk)));
        }
        let r = scan.send().await.map_err(sdk_error)?;
        let next = r.last_evaluated_key().map(|k| {
            let get = |n: &str| {
                k.get(n)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            format!("{}\u{1f}{}", get("pk"), get("sk"))
        });
        let mut entries: Vec<_> = self
            .with_mappings(r.items().to_vec())
            .await?
            .into_values()
            .collect();
        entries.sort_by(|a, b| a.details.product_id.cmp(&b.details.product_id));
        Ok((entries, next))
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<String>, StoreError> {
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("CHECKPOINT#{name}"), "CHECKPOINT")))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        r.item()
            .map(|a| get_s(a, "value", name).map(str::to_owned))
            .transpose()
    }

    async fn save_checkpoint(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let mut item = key(format!("CHECKPOINT#{name}"), "CHECKPOINT");
        item.insert("kind".into(), s("checkpoint"));
        item.insert("value".into(), s(value));
        self.put(item).await
    }
}

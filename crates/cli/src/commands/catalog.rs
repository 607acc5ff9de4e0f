//! `stockbridge catalog import|export`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;
use stockbridge_app::catalog_sync::{DetailsChange, DetailsInput, put_details};
use stockbridge_app::ports::{Clock, SystemClock};
use stockbridge_app::stock_admin::{ImportItem, Imported};
use stockbridge_app::storefront::export_catalog;
use stockbridge_bootstrap::Config;
use stockbridge_domain::{Money, PaymentLinkId, ProductId, StoreId};

use super::store_id;

#[derive(Debug, Deserialize)]
struct ImportRow {
    product_id: String,
    store_id: Option<String>,
    name: String,
    stock: u64,
    #[serde(default)]
    payment_links: LinksField,
    // Merchandising: with `unit_amount`, the row is the product's source of truth and the
    // catalog sync makes Stripe match it (product, price, a link per store).
    #[serde(default)]
    unit_amount: Option<u64>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    images: LinksField,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    metadata: MetadataField,
    /// The low-stock alert's threshold (`0`: none; empty: left as it is).
    #[serde(default)]
    low_stock: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(untagged)]
enum MetadataField {
    #[default]
    None,
    Map(std::collections::BTreeMap<String, String>),
    Joined(String),
}

impl MetadataField {
    fn into_map(self) -> Result<std::collections::BTreeMap<String, String>> {
        match self {
            Self::None => Ok(Default::default()),
            Self::Map(m) => Ok(m),
            Self::Joined(s) => s
                .split(';')
                .filter(|kv| !kv.trim().is_empty())
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                        .with_context(|| format!("metadata {kv:?} is not key=value"))
                })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(untagged)]
enum LinksField {
    #[default]
    None,
    List(Vec<String>),
    Joined(String),
}

impl LinksField {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::None => Vec::new(),
            Self::List(v) => v,
            Self::Joined(s) => s
                .split([';', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

fn read_rows(path: &Path) -> Result<Vec<ImportRow>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if text.trim_start().starts_with('[') {
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a JSON array of catalog items", path.display()))
    } else {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        reader
            .deserialize()
            .enumerate()
            .map(|(i, r)| r.with_context(|| format!("{}: CSV row {}", path.display(), i + 2)))
            .collect()
    }
}

pub async fn import(config: &Config, path: &Path, set_stock: bool) -> Result<()> {
    let rows = read_rows(path)?;
    let inventory = stockbridge_bootstrap::inventory(config).await?;
    let catalog = stockbridge_bootstrap::store(config).await;
    let (mut created, mut updated, mut kept, mut details_changed) = (0, 0, 0, 0);
    for (i, row) in rows.into_iter().enumerate() {
        let at = |what: &str| format!("item {} ({}): {what}", i + 1, row.product_id);
        let item = ImportItem {
            product_id: ProductId::parse(row.product_id.clone())
                .with_context(|| at("product_id"))?,
            store_id: match row.store_id.clone().filter(|s| !s.is_empty()) {
                Some(s) => StoreId::parse(s).with_context(|| at("store_id"))?,
                None => config.default_store.clone(),
            },
            name: row.name.clone(),
            stock: row.stock,
            payment_links: match row.payment_links.into_vec() {
                // An empty cell keeps the item's links (e.g. the ones the catalog sync made).
                v if v.is_empty() => None,
                v => Some(
                    v.into_iter()
                        .map(PaymentLinkId::parse)
                        .collect::<Result<Vec<_>, _>>()
                        .with_context(|| at("payment_links"))?,
                ),
            },
        };
        // Validated before anything is written; written after the stock record exists, so the
        // sync finds the store's item to put the link on.
        let details = match row.unit_amount {
            None => None,
            Some(amount) => Some(DetailsInput {
                product_id: item.product_id.clone(),
                store_id: item.store_id.clone(),
                name: item.name.clone(),
                description: row.description,
                images: row.images.into_vec(),
                price: Money::new(amount, row.currency.as_deref().unwrap_or("usd"))
                    .with_context(|| at("currency"))?,
                active: row.active.unwrap_or(true),
                metadata: row.metadata.into_map().with_context(|| at("metadata"))?,
            }),
        };
        if let Some(d) = &details {
            d.validate().with_context(|| at("details"))?;
        }
        match inventory
            .import_item(&item, set_stock, "catalog import")
            .await
            .with_context(|| at("import"))?
        {
            Imported::Created => created += 1,
            Imported::Updated => updated += 1,
            Imported::StockKept { current, file } => {
                kept += 1;
                eprintln!(
                    "{} in {}: stock left at {current} (the file says {file}; orders move stock after a file is written — pass --set-stock to overwrite, or use `stockbridge stock set`)",
                    item.product_id, item.store_id
                );
            }
        }
        if let Some(threshold) = row.low_stock {
            use stockbridge_app::ports::LowStockStore;
            catalog
                .set_low_stock(
                    &item.store_id,
                    &item.product_id,
                    (threshold > 0).then_some(threshold),
                )
                .await
                .with_context(|| at("low_stock"))?;
        }
        if let Some(input) = &details {
            match put_details(&catalog, &SystemClock, input)
                .await
                .with_context(|| at("details"))?
            {
                DetailsChange::Created | DetailsChange::Changed(_) => details_changed += 1,
                DetailsChange::Unchanged => {}
            }
        }
    }
    println!(
        "imported {}: {created} created, {updated} updated, {kept} with stock left as is; {details_changed} products' details changed (synced to Stripe by catalog-sync)",
        path.display()
    );
    Ok(())
}

/// `catalog export`: the storefront's catalog document, to a file or stdout.
pub async fn export(config: &Config, store: Option<String>, out: Option<PathBuf>) -> Result<()> {
    let store = store_id(config, store)?;
    let adapters = stockbridge_bootstrap::adapters(config).await?;
    let doc = export_catalog(
        &adapters.store,
        &adapters.payments,
        &store,
        &config.topic_prefix,
        SystemClock.now(),
    )
    .await?;
    let json = serde_json::to_string_pretty(&doc)?;
    match out {
        Some(path) => std::fs::write(&path, json + "\n")
            .with_context(|| format!("writing {}", path.display()))?,
        None => println!("{json}"),
    }
    Ok(())
}

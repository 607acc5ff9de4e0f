//! The stock topic and message: the contract between stockbridge and every storefront.
//!
//! Topic: `{prefix}/{store_id}/products/{product_id}/stock` (prefix default `stockbridge`).
//! Payload (JSON, QoS 1, retained):
//! `{"product_id","store_id","available","sold_out","version","updated_at","held"}` where
//! `version` strictly increases per item, `updated_at` is RFC 3339 (UTC, milliseconds) and
//! `held` counts units pending checkouts hold (not available, not sold yet; added after the
//! others, so older readers ignore it).

use stockbridge_domain::{ProductId, StockLevel, StoreId, Timestamp};

/// The topic of one product's stock.
pub fn stock_topic(prefix: &str, store_id: &StoreId, product_id: &ProductId) -> String {
    format!("{prefix}/{store_id}/products/{product_id}/stock")
}

/// The message body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StockMessage {
    /// The product.
    pub product_id: String,
    /// The store.
    pub store_id: String,
    /// Units available.
    pub available: u64,
    /// `available == 0`.
    pub sold_out: bool,
    /// Strictly increasing per item.
    pub version: u64,
    /// RFC 3339.
    pub updated_at: String,
    /// Units held by pending checkouts.
    #[serde(default)]
    pub held: u64,
}

impl From<&StockLevel> for StockMessage {
    fn from(l: &StockLevel) -> Self {
        Self {
            product_id: l.product_id.to_string(),
            store_id: l.store_id.to_string(),
            available: l.available,
            sold_out: l.sold_out(),
            version: l.version,
            updated_at: rfc3339(l.updated_at),
            held: l.held,
        }
    }
}

/// Serialises a level as the message body.
pub fn stock_payload(level: &StockLevel) -> Vec<u8> {
    // Serialising a struct of strings and integers cannot fail.
    serde_json::to_vec(&StockMessage::from(level)).unwrap_or_default()
}

/// Formats a timestamp as RFC 3339 in UTC with millisecond precision.
pub fn rfc3339(t: Timestamp) -> String {
    let nanos = i128::from(t.0) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|dt| {
            dt.replace_nanosecond(dt.millisecond() as u32 * 1_000_000)
                .ok()?
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topic_has_the_documented_shape() {
        let s = StoreId::parse("store_chicago").unwrap();
        let p = ProductId::parse("prod_1").unwrap();
        assert_eq!(
            stock_topic("stockbridge", &s, &p),
            "stockbridge/store_chicago/products/prod_1/stock"
        );
    }

    #[test]
    fn the_payload_has_every_documented_field() {
        let level = StockLevel {
            product_id: ProductId::parse("prod_1").unwrap(),
            store_id: StoreId::parse("s").unwrap(),
            available: 0,
            held: 2,
            version: 12,
            updated_at: Timestamp(1_761_935_276_123),
        };
        let v: serde_json::Value = serde_json::from_slice(&stock_payload(&level)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"product_id":"prod_1","store_id":"s","available":0,"sold_out":true,"version":12,"updated_at":"2025-10-31T18:27:56.123Z","held":2})
        );
    }
}

//! The merchandising catalog and what it takes to make Stripe agree with it.
//!
//! A product's [`ProductDetails`] (name, description, images, price, active, metadata and the
//! stores that sell it) are the source of truth. Stripe holds what payments need: a Product with
//! the same id, one active Price per amount, and one Payment Link per store. [`StripeMapping`]
//! records the Stripe ids a product maps to and which revision of its details Stripe last
//! matched. The rules here compare the two sides; the application layer makes the calls.
//!
//! Ownership of fields:
//! - the catalog owns a Product's `name`, `description`, `images`, `active` and the metadata
//!   keys it defines (keys it defined before and dropped are removed from Stripe);
//! - Stripe owns everything else (other metadata keys, tax code, `updated`, ...): recorded in
//!   the mapping, never overwritten;
//! - Prices are immutable at Stripe: a new amount is a new Price, and the old one is archived;
//! - a Payment Link cannot change its price: a new price gets a new link per store and the old
//!   link is switched off. Whether a link is active is owned by stock (see
//!   [`crate::invariants`]), not by the catalog.

use std::collections::{BTreeMap, BTreeSet};

use crate::{PaymentLinkId, PriceId, ProductId, StoreId, Timestamp};

/// Why catalog details are invalid. Each message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetailsError {
    /// A field breaks a rule (ours or Stripe's limits).
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn invalid(field: &'static str, message: impl Into<String>) -> DetailsError {
    DetailsError::Invalid {
        field,
        message: message.into(),
    }
}

/// An amount in the currency's minor unit (cents), as Stripe's `unit_amount`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Money {
    /// Minor units.
    pub amount: u64,
    /// Lower-case ISO 4217 code (`usd`).
    pub currency: String,
}

impl Money {
    /// Validates the currency (three ASCII letters) and lower-cases it.
    ///
    /// # Errors
    /// [`DetailsError`] naming `currency`.
    pub fn new(amount: u64, currency: &str) -> Result<Self, DetailsError> {
        let currency = currency.trim().to_ascii_lowercase();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(invalid(
                "currency",
                format!("{currency:?} is not a three-letter ISO 4217 code"),
            ));
        }
        Ok(Self { amount, currency })
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// A product's merchandising details: the source of truth for Stripe.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProductDetails {
    /// The product; also its Stripe Product id.
    pub product_id: ProductId,
    /// Display name.
    pub name: String,
    /// Longer text.
    pub description: Option<String>,
    /// Image URLs (at most 8).
    pub images: Vec<String>,
    /// The price of one unit.
    pub price: Money,
    /// Whether it is for sale at all.
    pub active: bool,
    /// Catalog-owned metadata (at most 50 keys).
    pub metadata: BTreeMap<String, String>,
    /// The stores that sell it (each gets a Payment Link).
    pub stores: BTreeSet<StoreId>,
    /// Increases by one on every change of the fields above.
    pub revision: u64,
    /// When they last changed.
    pub updated_at: Timestamp,
}

impl ProductDetails {
    /// Checks Stripe's limits, so a bad row is refused at import rather than dead-lettered
    /// later.
    ///
    /// # Errors
    /// [`DetailsError`] naming the first bad field.
    pub fn validate(&self) -> Result<(), DetailsError> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        if self.name.chars().count() > 250 {
            return Err(invalid("name", "must be at most 250 characters"));
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 40_000)
        {
            return Err(invalid("description", "must be at most 40,000 characters"));
        }
        if self.images.len() > 8 {
            return Err(invalid("images", "Stripe allows at most 8 images"));
        }
        if let Some(bad) = self
            .images
            .iter()
            .find(|u| !(u.starts_with("https://") || u.starts_with("http://")) || u.len() > 2048)
        {
            return Err(invalid(
                "images",
                format!("{bad:?} is not an http(s) URL of at most 2048 characters"),
            ));
        }
        if self.metadata.len() > 50 {
            return Err(invalid("metadata", "Stripe allows at most 50 keys"));
        }
        if let Some((k, _)) = self
            .metadata
            .iter()
            .find(|(k, v)| k.is_empty() || k.len() > 40 || k.contains('[') || v.len() > 500)
        {
            return Err(invalid(
                "metadata",
                format!("key {k:?}: keys are 1-40 characters without '[', values at most 500"),
            ));
        }
        if self.stores.is_empty() {
            return Err(invalid("stores", "a product is sold in at least one store"));
        }
        Ok(())
    }
}

/// The Stripe ids a product maps to, and what Stripe last agreed with.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StripeMapping {
    /// The active Price for the catalog's amount.
    pub price_id: Option<PriceId>,
    /// Its amount.
    pub price: Option<Money>,
    /// The Payment Link stockbridge made in each store.
    pub links: BTreeMap<StoreId, PaymentLinkId>,
    /// The metadata keys the catalog set at Stripe (so a key dropped from the catalog is
    /// removed there, and keys anyone else added are left alone).
    pub metadata_keys: BTreeSet<String>,
    /// The revision of the details Stripe last matched (0: never).
    pub synced_revision: u64,
    /// Stripe-owned fields, as last seen: metadata keys the catalog does not define.
    pub stripe_metadata: BTreeMap<String, String>,
    /// Stripe's `updated` of the Product, as last seen (Unix seconds).
    pub stripe_updated: Option<i64>,
    /// Increases on every write, for compare-and-set.
    pub version: u64,
    /// A sync of this product is under way until then (ms since epoch): one sync per product at
    /// a time, so two revisions synced at once never leave an old price or link selling.
    #[serde(default)]
    pub lease_until: Option<Timestamp>,
}

/// A Stripe Product, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeProduct {
    /// Its id.
    pub id: ProductId,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Images.
    pub images: Vec<String>,
    /// Active.
    pub active: bool,
    /// Every metadata key.
    pub metadata: BTreeMap<String, String>,
    /// Last change (Unix seconds).
    pub updated: i64,
    /// Its default price, if any.
    pub default_price: Option<PriceId>,
}

/// A Stripe Price, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripePrice {
    /// Its id.
    pub id: PriceId,
    /// Its product.
    pub product: ProductId,
    /// `unit_amount` (absent for custom amounts, which the catalog never makes).
    pub amount: Option<u64>,
    /// Currency.
    pub currency: String,
    /// Whether it can be used for new purchases.
    pub active: bool,
}

impl StripePrice {
    /// Whether it charges exactly `money`.
    pub fn charges(&self, money: &Money) -> bool {
        self.amount == Some(money.amount) && self.currency == money.currency
    }
}

/// A Stripe Payment Link, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeLink {
    /// Its id.
    pub id: PaymentLinkId,
    /// Whether it accepts payments.
    pub active: bool,
    /// The prices it sells.
    pub prices: Vec<PriceId>,
    /// Their products, in the same order (empty when Stripe did not say).
    pub products: Vec<ProductId>,
    /// `metadata.store_id`.
    pub store_id: Option<StoreId>,
    /// `metadata.product_id`.
    pub product_id: Option<ProductId>,
}

/// The catalog-owned fields of a Product, as sent to Stripe on create or update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductFields {
    /// Name.
    pub name: String,
    /// Description (`None` clears it).
    pub description: Option<String>,
    /// Images.
    pub images: Vec<String>,
    /// Active.
    pub active: bool,
    /// Keys to set.
    pub metadata: BTreeMap<String, String>,
    /// Keys to remove (the catalog dropped them).
    pub metadata_removed: BTreeSet<String>,
}

impl ProductFields {
    /// A stable text of the fields, for idempotency keys.
    pub fn fingerprint(&self) -> String {
        format!(
            "{:?}|{:?}|{:?}|{}|{:?}|{:?}",
            self.name,
            self.description,
            self.images,
            self.active,
            self.metadata,
            self.metadata_removed
        )
    }
}

/// One field that differs between the catalog and Stripe.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldDiff {
    /// The field (`name`, `metadata.color`, `price`, ...).
    pub field: String,
    /// The catalog's value.
    pub expected: String,
    /// Stripe's value.
    pub found: String,
}

/// The fields stockbridge sends for `details`, given what it set before.
pub fn product_fields(details: &ProductDetails, mapping: &StripeMapping) -> ProductFields {
    ProductFields {
        name: details.name.clone(),
        description: details.description.clone(),
        images: details.images.clone(),
        active: details.active,
        metadata: details.metadata.clone(),
        metadata_removed: mapping
            .metadata_keys
            .iter()
            .filter(|k| !details.metadata.contains_key(*k))
            .cloned()
            .collect(),
    }
}

/// The catalog-owned fields on which Stripe's Product differs from the catalog (empty: they
/// agree).
pub fn product_diffs(fields: &ProductFields, stripe: &StripeProduct) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    let mut diff = |field: &str, expected: String, found: String| {
        if expected != found {
            out.push(FieldDiff {
                field: field.to_owned(),
                expected,
                found,
            });
        }
    };
    let shown = |v: Option<&String>| v.map_or_else(|| "(none)".to_owned(), |v| format!("{v:?}"));
    diff("name", fields.name.clone(), stripe.name.clone());
    diff(
        "description",
        shown(fields.description.as_ref()),
        shown(stripe.description.as_ref().filter(|d| !d.is_empty())),
    );
    diff(
        "images",
        format!("{:?}", fields.images),
        format!("{:?}", stripe.images),
    );
    diff(
        "active",
        fields.active.to_string(),
        stripe.active.to_string(),
    );
    for (k, v) in &fields.metadata {
        diff(
            &format!("metadata.{k}"),
            shown(Some(v)),
            shown(stripe.metadata.get(k)),
        );
    }
    for k in &fields.metadata_removed {
        if let Some(v) = stripe.metadata.get(k) {
            diff(&format!("metadata.{k}"), shown(None), shown(Some(v)));
        }
    }
    out
}

/// The Stripe-owned metadata of a Product: keys the catalog neither defines nor removed.
pub fn stripe_owned_metadata(
    fields: &ProductFields,
    stripe: &StripeProduct,
) -> BTreeMap<String, String> {
    stripe
        .metadata
        .iter()
        .filter(|(k, _)| !fields.metadata.contains_key(*k) && !fields.metadata_removed.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Whether differences found now are drift (someone changed Stripe) rather than a catalog
/// change on its way: Stripe already matched the current revision once.
pub fn is_drift(details: &ProductDetails, mapping: &StripeMapping) -> bool {
    mapping.synced_revision == details.revision
}

/// Which Price to sell at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceChoice {
    /// The mapped price is right.
    Keep(PriceId),
    /// An existing active price charges the catalog's amount (made by an earlier attempt, or by
    /// someone else): use it instead of making another.
    Adopt(PriceId),
    /// Make a new one.
    Create,
}

/// Picks the Price for `details`: the mapped one while it charges the catalog's amount and is
/// active, else an active price of the product that does, else a new one.
pub fn choose_price(
    details: &ProductDetails,
    mapping: &StripeMapping,
    mapped: Option<&StripePrice>,
    active_prices: &[StripePrice],
) -> PriceChoice {
    if let Some(p) = mapped.filter(|p| p.active && p.charges(&details.price)) {
        return PriceChoice::Keep(p.id.clone());
    }
    match active_prices
        .iter()
        .find(|p| p.active && p.product == details.product_id && p.charges(&details.price))
    {
        Some(p) if mapping.price_id.as_ref() == Some(&p.id) => PriceChoice::Keep(p.id.clone()),
        Some(p) => PriceChoice::Adopt(p.id.clone()),
        None => PriceChoice::Create,
    }
}

/// What to do about one store's Payment Link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkPlan {
    /// It sells the current price.
    Keep(PaymentLinkId),
    /// There is none (or Stripe lost it): make one.
    Create,
    /// It sells an old price (links cannot change price): make a new one, move the store's
    /// item to it and switch the old one off.
    Replace(PaymentLinkId),
}

/// Plans one store's link, given the mapped link as Stripe has it (`None`: no mapped link, or
/// Stripe does not know it).
pub fn plan_link(current: Option<&StripeLink>, price: &PriceId) -> LinkPlan {
    match current {
        None => LinkPlan::Create,
        Some(l) if l.prices.len() == 1 && l.prices[0] == *price => LinkPlan::Keep(l.id.clone()),
        Some(l) => LinkPlan::Replace(l.id.clone()),
    }
}

/// A Stripe idempotency key for one step of syncing a product: the same change always makes
/// the same key (a redelivered message replays Stripe's first answer instead of creating a
/// second object), a different change never does. At most 255 characters, as Stripe requires.
pub fn sync_key(product: &ProductId, step: &str, revision: u64, fingerprint: &str) -> String {
    // FNV-1a: stable across builds and platforms (unlike std's hasher).
    let hash = fingerprint.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let key = format!("sb-{step}-r{revision}-{hash:016x}-{product}");
    if key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic()) {
        return key;
    }
    // Long or non-ASCII ids (a header carries only ASCII): one hash of everything instead.
    let all = format!("{step}\n{product}\n{fingerprint}");
    let hash = all.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("sb-h-r{revision}-{hash:016x}")
}

#[cfg(test)]
mod tests;

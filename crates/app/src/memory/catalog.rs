//! The merchandising catalog and Stripe's catalog objects, in memory.

use super::*;

/// The in-memory catalog ([`crate::ports::CatalogStore`] of [`MemoryStore`]).
#[derive(Debug, Default, Clone)]
pub struct MemoryCatalog {
    /// Details and mapping by product.
    pub entries: BTreeMap<ProductId, crate::ports::CatalogEntry>,
    /// Named checkpoints.
    pub checkpoints: HashMap<String, String>,
    /// Mappings written before their product's details (as DynamoDB allows).
    pub orphan_mappings: BTreeMap<ProductId, stockbridge_domain::StripeMapping>,
}

impl MemoryStore {
    /// A copy of the catalog.
    pub fn catalog(&self) -> MemoryCatalog {
        lock(&self.catalog).clone()
    }
}

impl crate::ports::CatalogStore for MemoryStore {
    async fn entry(
        &self,
        product: &ProductId,
    ) -> Result<Option<crate::ports::CatalogEntry>, StoreError> {
        Ok(lock(&self.catalog).entries.get(product).cloned())
    }

    async fn entries(
        &self,
        products: &[ProductId],
    ) -> Result<HashMap<ProductId, crate::ports::CatalogEntry>, StoreError> {
        let c = lock(&self.catalog);
        Ok(products
            .iter()
            .filter_map(|p| c.entries.get(p).map(|e| (p.clone(), e.clone())))
            .collect())
    }

    async fn put_details(
        &self,
        details: &stockbridge_domain::ProductDetails,
        expected_revision: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut c = lock(&self.catalog);
        let current = c
            .entries
            .get(&details.product_id)
            .map(|e| e.details.revision);
        if current != expected_revision {
            return Err(StoreError::Conflict);
        }
        let mapping = match c.entries.get(&details.product_id) {
            Some(e) => e.mapping.clone(),
            None => c
                .orphan_mappings
                .remove(&details.product_id)
                .unwrap_or_default(),
        };
        c.entries.insert(
            details.product_id.clone(),
            crate::ports::CatalogEntry {
                details: details.clone(),
                mapping,
            },
        );
        Ok(())
    }

    async fn save_mapping(
        &self,
        product: &ProductId,
        mapping: &stockbridge_domain::StripeMapping,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let mut c = lock(&self.catalog);
        let current = match c.entries.get_mut(product) {
            Some(e) => &mut e.mapping,
            None => c.orphan_mappings.entry(product.clone()).or_default(),
        };
        if current.version != expected_version {
            return Err(StoreError::Conflict);
        }
        *current = mapping.clone();
        Ok(())
    }

    async fn scan_entries(
        &self,
        segment: u32,
        segments: u32,
        start: Option<String>,
    ) -> Result<(Vec<crate::ports::CatalogEntry>, Option<String>), StoreError> {
        const PAGE: usize = 100;
        let c = lock(&self.catalog);
        let in_segment = |p: &ProductId| {
            let h = p
                .as_str()
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            h % segments.max(1) == segment
        };
        let from = start.as_deref().unwrap_or("");
        let page: Vec<_> = c
            .entries
            .iter()
            .filter(|(p, _)| p.as_str() > from && in_segment(p))
            .take(PAGE)
            .map(|(_, e)| e.clone())
            .collect();
        let next = (page.len() == PAGE).then(|| page[PAGE - 1].details.product_id.to_string());
        Ok((page, next))
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.catalog).checkpoints.get(name).cloned())
    }

    async fn save_checkpoint(&self, name: &str, value: &str) -> Result<(), StoreError> {
        lock(&self.catalog)
            .checkpoints
            .insert(name.to_owned(), value.to_owned());
        Ok(())
    }
}

/// Stripe's catalog as [`MemoryPayments`] holds it.
#[derive(Debug, Default, Clone)]
pub struct MemoryStripeCatalog {
    /// Products.
    pub products: BTreeMap<ProductId, stockbridge_domain::StripeProduct>,
    /// Prices, in creation order.
    pub prices: Vec<stockbridge_domain::StripePrice>,
    /// Links made through the catalog API (their active flag lives in `MemoryPayments::links`).
    pub links: Vec<stockbridge_domain::StripeLink>,
    /// Objects created per idempotency key (a replay answers the first result).
    pub keys: HashMap<String, String>,
}

impl MemoryPayments {
    /// A copy of the Stripe catalog.
    pub fn stripe_catalog(&self) -> MemoryStripeCatalog {
        lock(&self.catalog).clone()
    }

    /// Adds a link as someone in the Dashboard would (no metadata).
    pub fn add_foreign_link(
        &self,
        id: &str,
        price: &stockbridge_domain::PriceId,
        product: &ProductId,
    ) {
        lock(&self.catalog)
            .links
            .push(stockbridge_domain::StripeLink {
                id: PaymentLinkId::parse(id).expect("valid id"),
                active: true,
                prices: vec![price.clone()],
                products: vec![product.clone()],
                store_id: None,
                product_id: None,
            });
    }

    /// Adds a product with one price as an existing Stripe account has them.
    pub fn add_stripe_product(
        &self,
        id: &str,
        name: &str,
        amount: u64,
    ) -> stockbridge_domain::PriceId {
        let mut c = lock(&self.catalog);
        let price = stockbridge_domain::PriceId::parse(format!("price_{}", c.prices.len() + 1))
            .expect("valid id");
        let product = ProductId::parse(id).expect("valid id");
        c.prices.push(stockbridge_domain::StripePrice {
            id: price.clone(),
            product: product.clone(),
            amount: Some(amount),
            currency: "usd".into(),
            active: true,
        });
        c.products.insert(
            product.clone(),
            stockbridge_domain::StripeProduct {
                id: product,
                name: name.to_owned(),
                description: None,
                images: vec![],
                active: true,
                metadata: BTreeMap::new(),
                updated: 1,
                default_price: Some(price.clone()),
            },
        );
        price
    }

    /// Edits a product as someone in the Dashboard would.
    pub fn edit_product(
        &self,
        id: &ProductId,
        edit: impl FnOnce(&mut stockbridge_domain::StripeProduct),
    ) {
        if let Some(p) = lock(&self.catalog).products.get_mut(id) {
            edit(p);
            p.updated += 1;
        }
    }

    fn call(&self, op: &'static str) {
        lock(&self.calls).push(op);
    }

    fn page_fault(&self) -> Result<(), PaymentsError> {
        let mut left = lock(&self.pages_before_failure);
        match *left {
            Some(0) => {
                *left = None;
                Err(PaymentsError::Unavailable {
                    operation: "list",
                    message: "injected failure".into(),
                })
            }
            Some(n) => {
                *left = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// One Stripe list page (100) of `items`, saying whether more follow.
pub(super) fn page_of<T>(items: impl Iterator<Item = T>) -> crate::ports::Page<T> {
    let mut items: Vec<T> = items.take(101).collect();
    let has_more = items.len() > 100;
    items.truncate(100);
    crate::ports::Page { items, has_more }
}

pub(super) fn memory_link(
    c: &MemoryStripeCatalog,
    links: &HashMap<PaymentLinkId, bool>,
    id: &PaymentLinkId,
) -> Option<stockbridge_domain::StripeLink> {
    c.links.iter().find(|l| &l.id == id).map(|l| {
        let mut l = l.clone();
        l.active = links.get(id).copied().unwrap_or(true);
        l
    })
}

impl crate::ports::StripeCatalog for MemoryPayments {
    async fn product(
        &self,
        id: &ProductId,
    ) -> Result<Option<stockbridge_domain::StripeProduct>, PaymentsError> {
        self.call("get_product");
        Ok(lock(&self.catalog).products.get(id).cloned())
    }

    async fn create_product(
        &self,
        id: &ProductId,
        fields: &stockbridge_domain::ProductFields,
        _key: &str,
    ) -> Result<stockbridge_domain::StripeProduct, PaymentsError> {
        self.call("create_product");
        let mut c = lock(&self.catalog);
        if c.products.contains_key(id) {
            return Err(PaymentsError::Rejected {
                operation: "create product",
                message: "Product already exists.".into(),
            });
        }
        let p = stockbridge_domain::StripeProduct {
            id: id.clone(),
            name: fields.name.clone(),
            description: fields.description.clone(),
            images: fields.images.clone(),
            active: fields.active,
            metadata: fields.metadata.clone(),
            updated: 1,
            default_price: None,
        };
        c.products.insert(id.clone(), p.clone());
        Ok(p)
    }

    async fn update_product(
        &self,
        id: &ProductId,
        fields: &stockbridge_domain::ProductFields,
        default_price: Option<&stockbridge_domain::PriceId>,
        _key: &str,
    ) -> Result<stockbridge_domain::StripeProduct, PaymentsError> {
        self.call("update_product");
        let mut c = lock(&self.catalog);
        let p = c
            .products
            .get_mut(id)
            .ok_or_else(|| PaymentsError::NotFound {
                operation: "update product",
                message: id.to_string(),
            })?;
        p.name = fields.name.clone();
        p.description = fields.description.clone();
        p.images = fields.images.clone();
        p.active = fields.active;
        for (k, v) in &fields.metadata {
            p.metadata.insert(k.clone(), v.clone());
        }
        for k in &fields.metadata_removed {
            p.metadata.remove(k);
        }
        if let Some(d) = default_price {
            p.default_price = Some(d.clone());
        }
        p.updated += 1;
        Ok(p.clone())
    }

    async fn price(
        &self,
        id: &stockbridge_domain::PriceId,
    ) -> Result<Option<stockbridge_domain::StripePrice>, PaymentsError> {
        self.call("get_price");
        Ok(lock(&self.catalog)
            .prices
            .iter()
            .find(|p| &p.id == id)
            .cloned())
    }

    async fn active_prices(
        &self,
        product: &ProductId,
    ) -> Result<Vec<stockbridge_domain::StripePrice>, PaymentsError> {
        self.call("list_prices");
        Ok(lock(&self.catalog)
            .prices
            .iter()
            .filter(|p| &p.product == product && p.active)
            .cloned()
            .collect())
    }

    async fn create_price(
        &self,
        product: &ProductId,
        money: &stockbridge_domain::Money,
        key: &str,
    ) -> Result<stockbridge_domain::StripePrice, PaymentsError> {
        self.call("create_price");
        let mut c = lock(&self.catalog);
        if let Some(id) = c.keys.get(key).cloned() {
            return Ok(c
                .prices
                .iter()
                .find(|p| p.id.as_str() == id)
                .cloned()
                .expect("keyed price"));
        }
        let p = stockbridge_domain::StripePrice {
            id: stockbridge_domain::PriceId::parse(format!("price_{}", c.prices.len() + 1))
                .expect("valid id"),
            product: product.clone(),
            amount: Some(money.amount),
            currency: money.currency.clone(),
            active: true,
        };
        c.keys.insert(key.to_owned(), p.id.to_string());
        c.prices.push(p.clone());
        Ok(p)
    }

    async fn archive_price(&self, id: &stockbridge_domain::PriceId) -> Result<(), PaymentsError> {
        self.call("archive_price");
        if let Some(p) = lock(&self.catalog).prices.iter_mut().find(|p| &p.id == id) {
            p.active = false;
        }
        Ok(())
    }

    async fn link(
        &self,
        id: &PaymentLinkId,
    ) -> Result<Option<stockbridge_domain::StripeLink>, PaymentsError> {
        self.call("get_link");
        Ok(memory_link(&lock(&self.catalog), &lock(&self.links), id))
    }

    async fn create_link(
        &self,
        price: &stockbridge_domain::PriceId,
        store: &StoreId,
        product: &ProductId,
        key: &str,
    ) -> Result<stockbridge_domain::StripeLink, PaymentsError> {
        self.call("create_link");
        let mut c = lock(&self.catalog);
        if let Some(id) = c.keys.get(key).cloned() {
            let id = PaymentLinkId::parse(id).expect("keyed link");
            return Ok(memory_link(&c, &lock(&self.links), &id).expect("keyed link"));
        }
        let l = stockbridge_domain::StripeLink {
            id: PaymentLinkId::parse(format!("plink_{}", c.links.len() + 1)).expect("valid id"),
            active: true,
            prices: vec![price.clone()],
            products: vec![product.clone()],
            store_id: Some(store.clone()),
            product_id: Some(product.clone()),
        };
        c.keys.insert(key.to_owned(), l.id.to_string());
        c.links.push(l.clone());
        Ok(l)
    }

    async fn prices_page(
        &self,
        starting_after: Option<&stockbridge_domain::PriceId>,
    ) -> Result<
        crate::ports::Page<(
            stockbridge_domain::StripePrice,
            stockbridge_domain::StripeProduct,
        )>,
        PaymentsError,
    > {
        self.call("list_prices");
        let c = lock(&self.catalog);
        let start = starting_after
            .and_then(|a| c.prices.iter().position(|p| &p.id == a))
            .map_or(0, |i| i + 1);
        Ok(page_of(
            c.prices[start..]
                .iter()
                .filter(|p| p.active)
                .filter_map(|p| c.products.get(&p.product).map(|pr| (p.clone(), pr.clone()))),
        ))
    }

    async fn products_page(
        &self,
        starting_after: Option<&ProductId>,
    ) -> Result<
        crate::ports::Page<(
            stockbridge_domain::StripeProduct,
            Option<stockbridge_domain::StripePrice>,
        )>,
        PaymentsError,
    > {
        self.call("list_products");
        self.page_fault()?;
        let c = lock(&self.catalog);
        Ok(page_of(
            c.products
                .values()
                .filter(|p| starting_after.is_none_or(|a| p.id > *a))
                .map(|p| {
                    let price = p
                        .default_price
                        .as_ref()
                        .and_then(|d| c.prices.iter().find(|x| &x.id == d).cloned());
                    (p.clone(), price)
                }),
        ))
    }

    async fn links_page(
        &self,
        starting_after: Option<&PaymentLinkId>,
    ) -> Result<crate::ports::Page<stockbridge_domain::StripeLink>, PaymentsError> {
        self.call("list_links");
        self.page_fault()?;
        let c = lock(&self.catalog);
        let links = lock(&self.links);
        let start = starting_after
            .and_then(|a| c.links.iter().position(|l| &l.id == a))
            .map_or(0, |i| i + 1);
        Ok(page_of(
            c.links[start..]
                .iter()
                .filter_map(|l| memory_link(&c, &links, &l.id)),
        ))
    }
}

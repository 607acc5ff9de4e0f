//! [`StripeCatalog`]: Products, Prices and Payment Links through async-stripe's typed requests.

use std::collections::{BTreeMap, HashMap};

use stockbridge_app::ports::{Page, PaymentsError, StripeCatalog};
use stockbridge_domain::{
    Money, PaymentLinkId, PriceId, ProductFields, ProductId, StoreId, StripeLink, StripePrice,
    StripeProduct,
};

use stripe_payment::payment_link::{
    CreatePaymentLink, CreatePaymentLinkLineItems, ListPaymentLink, RetrievePaymentLink,
};
use stripe_product::price::{CreatePrice, ListPrice, RetrievePrice, UpdatePrice};
use stripe_product::product::{CreateProduct, ListProduct, RetrieveProduct, UpdateProduct};
use stripe_types::Expandable;

use crate::StripePayments;

const PAGE: i64 = 100;

fn invalid(operation: &'static str, message: impl Into<String>) -> PaymentsError {
    PaymentsError::Invalid {
        operation,
        message: message.into(),
    }
}

fn not_found_is_none<T>(r: Result<T, PaymentsError>) -> Result<Option<T>, PaymentsError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(PaymentsError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn product_view(
    operation: &'static str,
    p: &stripe_shared::Product,
) -> Result<StripeProduct, PaymentsError> {
    Ok(StripeProduct {
        id: ProductId::parse(p.id.as_str()).map_err(|e| invalid(operation, e.to_string()))?,
        name: p.name.clone(),
        description: p.description.clone(),
        images: p.images.clone(),
        active: p.active,
        metadata: p.metadata.clone().into_iter().collect::<BTreeMap<_, _>>(),
        updated: p.updated,
        default_price: match &p.default_price {
            Some(Expandable::Id(id)) => PriceId::parse(id.as_str()).ok(),
            Some(Expandable::Object(o)) => PriceId::parse(o.id.as_str()).ok(),
            None => None,
        },
    })
}

fn price_view(
    operation: &'static str,
    p: &stripe_shared::Price,
) -> Result<StripePrice, PaymentsError> {
    let product = match &p.product {
        Expandable::Id(id) => id.as_str().to_owned(),
        Expandable::Object(o) => o.id.as_str().to_owned(),
    };
    Ok(StripePrice {
        id: PriceId::parse(p.id.as_str()).map_err(|e| invalid(operation, e.to_string()))?,
        product: ProductId::parse(product).map_err(|e| invalid(operation, e.to_string()))?,
        amount: p.unit_amount.and_then(|a| u64::try_from(a).ok()),
        currency: p.currency.to_string(),
        active: p.active,
    })
}

fn link_view(
    operation: &'static str,
    l: &stripe_shared::PaymentLink,
) -> Result<StripeLink, PaymentsError> {
    let lines: Vec<&stripe_shared::Price> = l
        .line_items
        .as_ref()
        .map(|items| items.data.iter().filter_map(|i| i.price.as_ref()).collect())
        .unwrap_or_default();
    let prices = lines
        .iter()
        .filter_map(|p| PriceId::parse(p.id.as_str()).ok())
        .collect();
    let products = lines
        .iter()
        .filter_map(|p| match &p.product {
            Expandable::Id(id) => ProductId::parse(id.as_str()).ok(),
            Expandable::Object(o) => ProductId::parse(o.id.as_str()).ok(),
        })
        .collect();
    Ok(StripeLink {
        id: PaymentLinkId::parse(l.id.as_str()).map_err(|e| invalid(operation, e.to_string()))?,
        active: l.active,
        prices,
        products,
        store_id: l
            .metadata
            .get("store_id")
            .and_then(|s| StoreId::parse(s.as_str()).ok()),
        product_id: l
            .metadata
            .get("product_id")
            .and_then(|s| ProductId::parse(s.as_str()).ok()),
    })
}

fn skipped(id: &impl std::fmt::Display, e: &PaymentsError) {
    tracing::warn!(id = %id, error = %e, "Stripe object skipped: stockbridge cannot read it");
}

/// Metadata to send: the catalog's keys, and "" (Stripe's "unset") for keys it dropped.
fn metadata(fields: &ProductFields) -> HashMap<String, String> {
    fields
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain(
            fields
                .metadata_removed
                .iter()
                .map(|k| (k.clone(), String::new())),
        )
        .collect()
}

impl StripeCatalog for StripePayments {
    async fn product(&self, id: &ProductId) -> Result<Option<StripeProduct>, PaymentsError> {
        const OP: &str = "read product";
        let req = RetrieveProduct::new(id.as_str());
        not_found_is_none(self.with_retry(OP, || req.send(&self.client)).await)?
            .map(|p| product_view(OP, &p))
            .transpose()
    }

    async fn create_product(
        &self,
        id: &ProductId,
        fields: &ProductFields,
        idempotency_key: &str,
    ) -> Result<StripeProduct, PaymentsError> {
        const OP: &str = "create product";
        let mut req = CreateProduct::new(fields.name.clone())
            .id(id.as_str())
            .active(fields.active)
            .metadata(metadata(fields));
        if let Some(d) = fields.description.as_ref().filter(|d| !d.is_empty()) {
            req = req.description(d.clone());
        }
        if !fields.images.is_empty() {
            req = req.images(fields.images.clone());
        }
        let p = self.send_keyed(OP, &req, idempotency_key).await?;
        product_view(OP, &p)
    }

    async fn update_product(
        &self,
        id: &ProductId,
        fields: &ProductFields,
        default_price: Option<&PriceId>,
        idempotency_key: &str,
    ) -> Result<StripeProduct, PaymentsError> {
        const OP: &str = "update product";
        let mut req = UpdateProduct::new(id.as_str())
            .name(fields.name.clone())
            .active(fields.active)
            // "" clears the description at Stripe.
            .description(fields.description.clone().unwrap_or_default())
            .images(fields.images.clone())
            .metadata(metadata(fields));
        if let Some(p) = default_price {
            req = req.default_price(p.as_str());
        }
        let p = self.send_keyed(OP, &req, idempotency_key).await?;
        product_view(OP, &p)
    }

    async fn price(&self, id: &PriceId) -> Result<Option<StripePrice>, PaymentsError> {
        const OP: &str = "read price";
        let req = RetrievePrice::new(id.as_str());
        not_found_is_none(self.with_retry(OP, || req.send(&self.client)).await)?
            .map(|p| price_view(OP, &p))
            .transpose()
    }

    async fn active_prices(&self, product: &ProductId) -> Result<Vec<StripePrice>, PaymentsError> {
        const OP: &str = "list prices";
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut req = ListPrice::new()
                .product(product.as_str())
                .active(true)
                .limit(PAGE);
            if let Some(a) = &after {
                req = req.starting_after(a.clone());
            }
            let page = self.with_retry(OP, || req.send(&self.client)).await?;
            for p in &page.data {
                out.push(price_view(OP, p)?);
            }
            match (page.has_more, page.data.last()) {
                (true, Some(last)) => after = Some(last.id.as_str().to_owned()),
                _ => return Ok(out),
            }
        }
    }

    async fn create_price(
        &self,
        product: &ProductId,
        money: &Money,
        idempotency_key: &str,
    ) -> Result<StripePrice, PaymentsError> {
        const OP: &str = "create price";
        let currency = money
            .currency
            .parse::<stripe_types::Currency>()
            .map_err(|_| invalid(OP, format!("currency {}", money.currency)))?;
        let amount = i64::try_from(money.amount)
            .map_err(|_| invalid(OP, format!("amount {} is too large", money.amount)))?;
        let req = CreatePrice::new(currency)
            .product(product.as_str())
            .unit_amount(amount)
            .metadata(HashMap::from([(
                "stockbridge".to_owned(),
                "catalog".to_owned(),
            )]));
        let p = self.send_keyed(OP, &req, idempotency_key).await?;
        price_view(OP, &p)
    }

    async fn archive_price(&self, id: &PriceId) -> Result<(), PaymentsError> {
        const OP: &str = "archive price";
        let req = UpdatePrice::new(id.as_str()).active(false);
        // Naturally idempotent: archiving twice leaves it archived.
        not_found_is_none(self.with_retry(OP, || req.send(&self.client)).await)?;
        Ok(())
    }

    async fn link(&self, id: &PaymentLinkId) -> Result<Option<StripeLink>, PaymentsError> {
        const OP: &str = "read payment link";
        let req = RetrievePaymentLink::new(id.as_str()).expand(vec!["line_items".to_owned()]);
        not_found_is_none(self.with_retry(OP, || req.send(&self.client)).await)?
            .map(|l| link_view(OP, &l))
            .transpose()
    }

    async fn create_link(
        &self,
        price: &PriceId,
        store: &StoreId,
        product: &ProductId,
        idempotency_key: &str,
    ) -> Result<StripeLink, PaymentsError> {
        const OP: &str = "create payment link";
        let mut line = CreatePaymentLinkLineItems::new(1u64);
        line.price = Some(price.to_string());
        let req = CreatePaymentLink::new(vec![line])
            .metadata(HashMap::from([
                ("store_id".to_owned(), store.to_string()),
                ("product_id".to_owned(), product.to_string()),
            ]))
            .expand(vec!["line_items".to_owned()]);
        let l = self.send_keyed(OP, &req, idempotency_key).await?;
        let mut view = link_view(OP, &l)?;
        if view.prices.is_empty() {
            view.prices = vec![price.clone()];
            view.products = vec![product.clone()];
        }
        Ok(view)
    }

    async fn prices_page(
        &self,
        starting_after: Option<&PriceId>,
    ) -> Result<Page<(StripePrice, StripeProduct)>, PaymentsError> {
        const OP: &str = "list prices";
        let mut req = ListPrice::new()
            .active(true)
            .limit(PAGE)
            .expand(vec!["data.product".to_owned()]);
        if let Some(a) = starting_after {
            req = req.starting_after(a.as_str());
        }
        let page = self.with_retry(OP, || req.send(&self.client)).await?;
        let mut items = Vec::with_capacity(page.data.len());
        for p in &page.data {
            let Expandable::Object(product) = &p.product else {
                return Err(invalid(
                    OP,
                    format!("price {} came without its product", p.id),
                ));
            };
            // One object stockbridge cannot read (an id it refuses) must not stop the listing.
            match (price_view(OP, p), product_view(OP, product)) {
                (Ok(price), Ok(product)) => items.push((price, product)),
                (Err(e), _) | (_, Err(e)) => skipped(&p.id, &e),
            }
        }
        Ok(Page {
            items,
            has_more: page.has_more,
        })
    }

    async fn products_page(
        &self,
        starting_after: Option<&ProductId>,
    ) -> Result<Page<(StripeProduct, Option<StripePrice>)>, PaymentsError> {
        const OP: &str = "list products";
        let mut req = ListProduct::new()
            .limit(PAGE)
            .expand(vec!["data.default_price".to_owned()]);
        if let Some(a) = starting_after {
            req = req.starting_after(a.as_str());
        }
        let page = self.with_retry(OP, || req.send(&self.client)).await?;
        let mut items = Vec::with_capacity(page.data.len());
        for p in &page.data {
            let price = match &p.default_price {
                Some(Expandable::Object(price)) => price_view(OP, price).ok(),
                _ => None,
            };
            match product_view(OP, p) {
                Ok(product) => items.push((product, price)),
                Err(e) => skipped(&p.id, &e),
            }
        }
        Ok(Page {
            items,
            has_more: page.has_more,
        })
    }

    async fn links_page(
        &self,
        starting_after: Option<&PaymentLinkId>,
    ) -> Result<Page<StripeLink>, PaymentsError> {
        const OP: &str = "list payment links";
        let mut req = ListPaymentLink::new()
            .limit(PAGE)
            .expand(vec!["data.line_items".to_owned()]);
        if let Some(a) = starting_after {
            req = req.starting_after(a.as_str());
        }
        let page = self.with_retry(OP, || req.send(&self.client)).await?;
        let mut items = Vec::with_capacity(page.data.len());
        for l in &page.data {
            match link_view(OP, l) {
                Ok(link) => items.push(link),
                Err(e) => skipped(&l.id, &e),
            }
        }
        Ok(Page {
            items,
            has_more: page.has_more,
        })
    }
}

//! Stock, orders and the ledger (`InventoryStore`): one transaction per decision.

use super::*;

impl InventoryStore for DynamoStore {
    async fn controls(&self) -> Result<Controls, StoreError> {
        let cached = *self.controls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = cached.filter(|(at, _)| at.elapsed() < CONTROLS_TTL) {
            return Ok(c);
        }
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(CONTROL_PK.to_owned(), CONTROL_PK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        let c = Controls {
            repairs_paused: flag(r.item(), "repairs_paused"),
            links_paused: flag(r.item(), "links_paused"),
            refunds_paused: flag(r.item(), "refunds_paused"),
        };
        *self.controls.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), c));
        Ok(c)
    }

    async fn load(
        &self,
        order_id: &OrderId,
        store_id: &StoreId,
        products: &[ProductId],
    ) -> Result<(Option<OrderRecord>, Items), StoreError> {
        let mut keys = vec![key(order_pk(order_id), "ORDER")];
        keys.extend(products.iter().map(|p| key(item_pk(store_id, p), "ITEM")));
        let mut order = None;
        let mut items = Items::new();
        for a in self.batch_get(keys).await? {
            match a.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str) {
                Some("ORDER") => order = Some(parse_order(&a)?),
                _ => {
                    let mut item = parse_item(&a)?;
                    item.unrecorded_take = takes::mark_on(&a, order_id)?;
                    items.insert(item.product_id.clone(), item);
                }
            }
        }
        Ok((order, items))
    }

    async fn load_order(&self, order_id: &OrderId) -> Result<Option<OrderRecord>, StoreError> {
        let item = self
            .get_consistent(key(order_pk(order_id), "ORDER"))
            .await?;
        item.as_ref().map(parse_order).transpose()
    }

    async fn operation_recorded(&self, operation: &str) -> Result<Option<String>, StoreError> {
        let item = self
            .get_consistent(key(operation_pk(operation), "OPERATION"))
            .await?;
        Ok(item.map(|a| {
            a.get("what")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        }))
    }

    async fn commit(&self, write: &WriteSet) -> Result<(), StoreError> {
        let mut actions = Vec::with_capacity(1 + write.items.len() * 2 + write.checks.len());
        match &write.order {
            Some(OrderWrite::Create(r)) => {
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(order_attrs(r, self.retention)?))
                    .condition_expression("attribute_not_exists(pk)");
                actions.push(
                    TransactWriteItem::builder()
                        .put(build(put.build())?)
                        .build(),
                );
            }
            Some(OrderWrite::Update {
                record,
                expected_status,
                expected_payment,
                expected_after_sale,
            }) => {
                // `after_sale` (a number, absent until a refund or dispute is recorded) is the
                // record's after-sale revision: no update overwrites one, none applies it twice.
                let after_sale = if *expected_after_sale == 0 {
                    "attribute_not_exists(after_sale)"
                } else {
                    "after_sale = :after_sale"
                };
                // A refund recorded since the read (`record_refund` writes only its attribute)
                // is never put back to none.
                let refund = if record.refund_id.is_none() {
                    " AND attribute_not_exists(refund_id)"
                } else {
                    ""
                };
                let mut put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(order_attrs(record, self.retention)?))
                    .condition_expression(format!(
                        "#status = :expected AND payment = :payment AND {after_sale}{refund}"
                    ))
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":expected", s(expected_status.as_str()))
                    .expression_attribute_values(":payment", s(expected_payment.as_str()));
                if *expected_after_sale != 0 {
                    put = put.expression_attribute_values(":after_sale", n(expected_after_sale));
                }
                actions.push(
                    TransactWriteItem::builder()
                        .put(build(put.build())?)
                        .build(),
                );
            }
            None => {}
        }
        for u in &write.items {
            // A spread item's units are in its shards: only a regroup or a give-back writes it.
            let update = self.item_update(u, "", " AND attribute_not_exists(shards)");
            actions.push(
                TransactWriteItem::builder()
                    .update(build(update.build())?)
                    .build(),
            );
        }
        for (store, product, version) in &write.checks {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(key(item_pk(store, product), "ITEM")))
                .condition_expression("version = :seen AND attribute_not_exists(shards)")
                .expression_attribute_values(":seen", n(version));
            actions.push(
                TransactWriteItem::builder()
                    .condition_check(build(check.build())?)
                    .build(),
            );
        }
        for e in &write.ledger {
            actions.push(self.ledger_put(e)?);
        }
        if let Some(op) = &write.operation {
            // Recorded once: a rerun of the same operation is refused (as a conflict; the use
            // case then finds the record and answers "already applied").
            let mut a = key(operation_pk(&op.id), "OPERATION");
            a.insert("kind".into(), s("operation"));
            a.insert("operation".into(), s(op.id.clone()));
            a.insert("what".into(), s(op.what.clone()));
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(a))
                .condition_expression("attribute_not_exists(pk)");
            actions.push(
                TransactWriteItem::builder()
                    .put(build(put.build())?)
                    .build(),
            );
        }
        if let Some(r) = &write.restock {
            // Announced to the waitlist by the broadcaster, which the record's stream event
            // wakes (`waitlist.rs`).
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(crate::waitlist::restock_attrs(r)));
            actions.push(
                TransactWriteItem::builder()
                    .put(build(put.build())?)
                    .build(),
            );
        }
        if actions.is_empty() {
            return Ok(());
        }
        self.transact(actions).await
    }

    async fn take_stock(
        &self,
        take: &stockbridge_domain::take::StockTake,
    ) -> Result<Option<stockbridge_domain::take::TakeMark>, StoreError> {
        self.take_item(take).await
    }

    async fn record_take(
        &self,
        take: &stockbridge_domain::take::StockTake,
        write: &WriteSet,
    ) -> Result<(), StoreError> {
        self.record_taken(take, write).await
    }

    async fn ledger_entry(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
        shard: Option<u16>,
        version: u64,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        self.ledger_entry_at(store_id, product_id, shard, version)
            .await
    }

    async fn undo_take(
        &self,
        order_id: &OrderId,
        mark: stockbridge_domain::take::TakeMark,
        on: Option<u16>,
        write: &WriteSet,
    ) -> Result<(), StoreError> {
        self.undo_taken(order_id, mark, on, write).await
    }

    async fn forget_recorded_takes(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
    ) -> Result<usize, StoreError> {
        self.forget_recorded_marks(store_id, product_id).await
    }

    async fn record_refund(
        &self,
        order_id: &OrderId,
        refund_id: &RefundId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        // A refunded order is closed (only oversold orders are refunded): it may now expire.
        let (set, ttl) = match self.retention {
            Some(r) => (", expires_at = :x", n(r.expires_at(at))),
            None => ("", n(0)),
        };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(order_pk(order_id), "ORDER")))
            .update_expression(format!("SET refund_id = :r, updated_at = :t{set}"))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":r", s(refund_id.as_str()))
            .expression_attribute_values(":t", n(at.0));
        if !set.is_empty() {
            update = update.expression_attribute_values(":x", ttl);
        }
        update.send().await.map_err(sdk_error)?;
        Ok(())
    }

    async fn item(
        &self,
        store_id: &StoreId,
        product_id: &ProductId,
    ) -> Result<Option<CatalogItem>, StoreError> {
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(item_pk(store_id, product_id), "ITEM")))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        match r.item().map(parse_item).transpose()? {
            Some(item) => Ok(Some(self.with_shards(item).await?)),
            None => Ok(None),
        }
    }

    /// Creates a catalog item that does not exist yet.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when it exists.
    async fn create_item(&self, item: &CatalogItem, entry: &LedgerEntry) -> Result<(), StoreError> {
        let put_item = build(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item_attrs(item)))
                .condition_expression("attribute_not_exists(pk)")
                .build(),
        )?;
        let put_entry = build(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(ledger_attrs(entry, self.retention)))
                .build(),
        )?;
        let mut actions = vec![
            TransactWriteItem::builder().put(put_item).build(),
            TransactWriteItem::builder().put(put_entry).build(),
        ];
        // Each link's store, in the same transaction (a transaction holds 100 actions).
        for link in item.payment_links.iter().take(98) {
            let put = build(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(link_attrs(link, &item.store_id)))
                    .build(),
            )?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        self.transact(actions).await?;
        let rest = item.payment_links.get(98..).unwrap_or_default();
        self.remember_link_stores(&item.store_id, rest).await
    }

    async fn link_store(&self, link: &PaymentLinkId) -> Result<Option<StoreId>, StoreError> {
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(link_pk(link), "LINK")))
            .send()
            .await
            .map_err(sdk_error)?;
        r.item()
            .map(|a| {
                StoreId::parse(get_s(a, "store_id", &link_pk(link))?)
                    .map_err(|e| corrupt(&link_pk(link), e.to_string()))
            })
            .transpose()
    }

    /// `LINK#{link}` / `TERMS`, an item of its own: re-attaching the link (a Put of `LINK`)
    /// keeps it.
    async fn link_terms(
        &self,
        link: &PaymentLinkId,
    ) -> Result<Option<stockbridge_domain::LinkTerms>, StoreError> {
        let now = std::time::Instant::now();
        {
            let cache = self.link_terms.lock().unwrap_or_else(|e| e.into_inner());
            let fresh = |at: &std::time::Instant, known: bool| {
                let ttl = if known {
                    LINK_TERMS_TTL
                } else {
                    LINK_TERMS_UNKNOWN_TTL
                };
                now.duration_since(*at) < ttl
            };
            if let Some((at, terms)) = cache.get(link)
                && fresh(at, terms.is_some())
            {
                return Ok(terms.clone());
            }
        }
        let pk = link_pk(link);
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.clone(), "TERMS")))
            .send()
            .await
            .map_err(sdk_error)?;
        let terms = r
            .item()
            .map(|a| {
                Ok::<_, StoreError>(stockbridge_domain::LinkTerms {
                    product_id: ProductId::parse(get_s(a, "product_id", &pk)?)
                        .map_err(|e| corrupt(&pk, e.to_string()))?,
                    unit_amount: get_n(a, "unit_amount", &pk)?,
                    currency: get_s(a, "currency", &pk)?.to_owned(),
                    max_quantity: get_n(a, "max_quantity", &pk)?,
                })
            })
            .transpose()?;
        let mut cache = self.link_terms.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= LINK_TERMS_CACHED {
            cache.clear();
        }
        cache.insert(link.clone(), (now, terms.clone()));
        Ok(terms)
    }

    async fn remember_link_terms(
        &self,
        link: &PaymentLinkId,
        terms: &stockbridge_domain::LinkTerms,
    ) -> Result<(), StoreError> {
        let mut item = key(link_pk(link), "TERMS");
        item.insert("kind".into(), s("link_terms"));
        item.insert("product_id".into(), s(terms.product_id.as_str()));
        item.insert("unit_amount".into(), n(terms.unit_amount));
        item.insert("currency".into(), s(terms.currency.clone()));
        item.insert("max_quantity".into(), n(terms.max_quantity));
        self.put(item).await?;
        self.link_terms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                link.clone(),
                (std::time::Instant::now(), Some(terms.clone())),
            );
        Ok(())
    }

    /// Updates an item's name and payment links (not its stock).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the item does not exist.
    async fn update_item_details(
        &self,
        store: &StoreId,
        product: &ProductId,
        name: &str,
        payment_links: &[PaymentLinkId],
    ) -> Result<(), StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(item_pk(store, product), "ITEM")))
            .update_expression("SET #name = :name, payment_links = :links")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":name", s(name))
            .expression_attribute_values(":links", links_attr(payment_links))
            .send()
            .await;
        match r.map_err(sdk_error) {
            Err(StoreError::Conflict) => Err(StoreError::NotFound(format!("{store}/{product}"))),
            other => other.map(|_| ()),
        }?;
        self.remember_link_stores(store, payment_links).await
    }

    async fn clear_deactivated(
        &self,
        store: &StoreId,
        product: &ProductId,
        links: &[PaymentLinkId],
    ) -> Result<(), StoreError> {
        let Some(item) = self.item(store, product).await? else {
            return Ok(());
        };
        let remaining: Vec<PaymentLinkId> = item
            .deactivated_links
            .iter()
            .filter(|l| !links.contains(l))
            .cloned()
            .collect();
        if remaining == item.deactivated_links {
            return Ok(());
        }
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(item_pk(store, product), "ITEM")))
            .update_expression("SET deactivated_links = :new")
            .condition_expression("deactivated_links = :old AND available > :zero")
            .expression_attribute_values(":new", links_attr(&remaining))
            .expression_attribute_values(":old", links_attr(&item.deactivated_links))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match r.map_err(sdk_error) {
            // Changed since (sold out again, or more links recorded): keep them recorded; the next
            // run decides again from the new state.
            Err(StoreError::Conflict) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

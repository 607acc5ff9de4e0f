//! Every port through an `Arc`, so a use case can share one adapter (to go: the in-memory fakes become cheap-`Clone` handles, issue 14 step 3).

use super::*;

impl<T: Counters> Counters for std::sync::Arc<T> {
    fn take(
        &self,
        w: &Window,
        n: u32,
        cap: u32,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).take(w, n, cap)
    }
    fn count(&self, w: &Window) -> impl Future<Output = Result<u32, StoreError>> + Send {
        (**self).count(w)
    }
    fn add(&self, w: &Window, n: u32) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).add(w, n)
    }
    fn give_back(&self, w: &Window, n: u32) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).give_back(w, n)
    }
}

impl<T: ShardStore> ShardStore for std::sync::Arc<T> {
    fn read_shards(
        &self,
        s: &StoreId,
        p: &ProductId,
        k: u16,
    ) -> impl Future<Output = Result<Vec<stockbridge_domain::shard::Shard>, StoreError>> + Send
    {
        (**self).read_shards(s, p, k)
    }
    fn freeze_shards(
        &self,
        s: &StoreId,
        p: &ProductId,
        k: u16,
        e: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).freeze_shards(s, p, k, e)
    }
    fn shard_mark(
        &self,
        s: &StoreId,
        p: &ProductId,
        shard: u16,
        o: &OrderId,
    ) -> impl Future<Output = Result<Option<TakeMark>, StoreError>> + Send {
        (**self).shard_mark(s, p, shard, o)
    }
    fn regroup(
        &self,
        plan: &stockbridge_domain::shard::Regroup,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).regroup(plan)
    }
}

impl<T: InventoryStore> InventoryStore for std::sync::Arc<T> {
    fn link_store(
        &self,
        l: &PaymentLinkId,
    ) -> impl Future<Output = Result<Option<StoreId>, StoreError>> + Send {
        (**self).link_store(l)
    }
    fn link_terms(
        &self,
        l: &PaymentLinkId,
    ) -> impl Future<Output = Result<Option<stockbridge_domain::LinkTerms>, StoreError>> + Send
    {
        (**self).link_terms(l)
    }
    fn remember_link_terms(
        &self,
        l: &PaymentLinkId,
        t: &stockbridge_domain::LinkTerms,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).remember_link_terms(l, t)
    }
    fn controls(&self) -> impl Future<Output = Result<Controls, StoreError>> + Send {
        (**self).controls()
    }
    fn load(
        &self,
        o: &OrderId,
        s: &StoreId,
        p: &[ProductId],
    ) -> impl Future<Output = Result<(Option<OrderRecord>, Items), StoreError>> + Send {
        (**self).load(o, s, p)
    }
    fn load_order(
        &self,
        o: &OrderId,
    ) -> impl Future<Output = Result<Option<OrderRecord>, StoreError>> + Send {
        (**self).load_order(o)
    }
    fn operation_recorded(
        &self,
        op: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        (**self).operation_recorded(op)
    }
    fn commit(&self, w: &WriteSet) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).commit(w)
    }
    fn take_stock(
        &self,
        t: &StockTake,
    ) -> impl Future<Output = Result<Option<TakeMark>, StoreError>> + Send {
        (**self).take_stock(t)
    }
    fn record_take(
        &self,
        t: &StockTake,
        w: &WriteSet,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).record_take(t, w)
    }
    fn forget_recorded_takes(
        &self,
        s: &StoreId,
        p: &ProductId,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        (**self).forget_recorded_takes(s, p)
    }
    fn ledger_entry(
        &self,
        s: &StoreId,
        p: &ProductId,
        shard: Option<u16>,
        v: u64,
    ) -> impl Future<Output = Result<Option<LedgerEntry>, StoreError>> + Send {
        (**self).ledger_entry(s, p, shard, v)
    }
    fn undo_take(
        &self,
        o: &OrderId,
        m: TakeMark,
        on: Option<u16>,
        w: &WriteSet,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).undo_take(o, m, on, w)
    }
    fn record_refund(
        &self,
        o: &OrderId,
        r: &RefundId,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).record_refund(o, r, at)
    }
    fn item(
        &self,
        s: &StoreId,
        p: &ProductId,
    ) -> impl Future<Output = Result<Option<CatalogItem>, StoreError>> + Send {
        (**self).item(s, p)
    }
    fn clear_deactivated(
        &self,
        s: &StoreId,
        p: &ProductId,
        l: &[PaymentLinkId],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).clear_deactivated(s, p, l)
    }
    fn create_item(
        &self,
        i: &CatalogItem,
        e: &LedgerEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).create_item(i, e)
    }
    fn update_item_details(
        &self,
        s: &StoreId,
        p: &ProductId,
        n: &str,
        l: &[PaymentLinkId],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).update_item_details(s, p, n, l)
    }
}

impl<T: StockPublisher> StockPublisher for std::sync::Arc<T> {
    fn publish(&self, level: &StockLevel) -> impl Future<Output = Result<(), PublishError>> + Send {
        (**self).publish(level)
    }
}

impl<T: Payments> Payments for std::sync::Arc<T> {
    fn line_items(
        &self,
        s: &OrderId,
    ) -> impl Future<Output = Result<Vec<SessionLine>, PaymentsError>> + Send {
        (**self).line_items(s)
    }
    fn refund(
        &self,
        r: &RefundRequest,
    ) -> impl Future<Output = Result<RefundId, PaymentsError>> + Send {
        (**self).refund(r)
    }
    fn set_link_active(
        &self,
        l: &PaymentLinkId,
        a: bool,
        m: Option<&str>,
    ) -> impl Future<Output = Result<LinkSwitch, PaymentsError>> + Send {
        (**self).set_link_active(l, a, m)
    }
    fn create_payment_intent(
        &self,
        r: &NewPaymentIntent,
    ) -> impl Future<Output = Result<CreatedPaymentIntent, PaymentsError>> + Send {
        (**self).create_payment_intent(r)
    }
    fn capture_payment_intent(
        &self,
        p: &PaymentIntentId,
        k: &str,
    ) -> impl Future<Output = Result<(), PaymentsError>> + Send {
        (**self).capture_payment_intent(p, k)
    }
    fn cancel_payment_intent(
        &self,
        p: &PaymentIntentId,
        k: &str,
    ) -> impl Future<Output = Result<(), PaymentsError>> + Send {
        (**self).cancel_payment_intent(p, k)
    }
    fn payment_intent_status(
        &self,
        p: &PaymentIntentId,
    ) -> impl Future<Output = Result<IntentStatus, PaymentsError>> + Send {
        (**self).payment_intent_status(p)
    }
}

impl<T: Clock> Clock for std::sync::Arc<T> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

impl<T: CatalogReader> CatalogReader for std::sync::Arc<T> {
    fn store_items(
        &self,
        s: &StoreId,
    ) -> impl Future<Output = Result<Vec<CatalogItem>, StoreError>> + Send {
        (**self).store_items(s)
    }
    fn all_items(&self) -> impl Future<Output = Result<Vec<CatalogItem>, StoreError>> + Send {
        (**self).all_items()
    }
    fn oversold_orders(
        &self,
        s: Option<&StoreId>,
    ) -> impl Future<Output = Result<Vec<OrderRecord>, StoreError>> + Send {
        (**self).oversold_orders(s)
    }
    fn awaiting_orders(
        &self,
        s: Option<&StoreId>,
    ) -> impl Future<Output = Result<Vec<OrderRecord>, StoreError>> + Send {
        (**self).awaiting_orders(s)
    }
    fn pending_orders(
        &self,
        s: Option<&StoreId>,
    ) -> impl Future<Output = Result<Vec<OrderRecord>, StoreError>> + Send {
        (**self).pending_orders(s)
    }
    fn expired_holds(
        &self,
        now: Timestamp,
        after: Option<&HoldKey>,
        limit: u32,
    ) -> impl Future<Output = Result<HoldPage, StoreError>> + Send {
        (**self).expired_holds(now, after, limit)
    }
}

impl<T: ReconciliationLog> ReconciliationLog for std::sync::Arc<T> {
    fn record(
        &self,
        at: Timestamp,
        d: &stockbridge_domain::invariants::Discrepancy,
        repaired: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).record(at, d, repaired)
    }
}

impl<T: LinkDirectory> LinkDirectory for std::sync::Arc<T> {
    fn link_summary(
        &self,
        l: &PaymentLinkId,
    ) -> impl Future<Output = Result<LinkSummary, PaymentsError>> + Send {
        (**self).link_summary(l)
    }
    fn link_active(
        &self,
        l: &PaymentLinkId,
    ) -> impl Future<Output = Result<Option<bool>, PaymentsError>> + Send {
        (**self).link_active(l)
    }
}

impl<T: SessionLog> SessionLog for std::sync::Arc<T> {
    fn session_payment(
        &self,
        s: &OrderId,
    ) -> impl Future<Output = Result<SessionPayment, PaymentsError>> + Send {
        (**self).session_payment(s)
    }
    fn completed_sessions_since(
        &self,
        since: i64,
    ) -> impl Future<Output = Result<Vec<SessionSummary>, PaymentsError>> + Send {
        (**self).completed_sessions_since(since)
    }
}

impl<T: CatalogStore> CatalogStore for std::sync::Arc<T> {
    fn entry(
        &self,
        p: &ProductId,
    ) -> impl Future<Output = Result<Option<CatalogEntry>, StoreError>> + Send {
        (**self).entry(p)
    }
    fn entries(
        &self,
        p: &[ProductId],
    ) -> impl Future<Output = Result<HashMap<ProductId, CatalogEntry>, StoreError>> + Send {
        (**self).entries(p)
    }
    fn put_details(
        &self,
        d: &ProductDetails,
        r: Option<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put_details(d, r)
    }
    fn save_mapping(
        &self,
        p: &ProductId,
        m: &StripeMapping,
        v: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).save_mapping(p, m, v)
    }
    fn scan_entries(
        &self,
        segment: u32,
        segments: u32,
        start: Option<String>,
    ) -> impl Future<Output = Result<(Vec<CatalogEntry>, Option<String>), StoreError>> + Send {
        (**self).scan_entries(segment, segments, start)
    }
    fn checkpoint(
        &self,
        n: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        (**self).checkpoint(n)
    }
    fn save_checkpoint(
        &self,
        n: &str,
        v: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).save_checkpoint(n, v)
    }
}

impl<T: StripeCatalog> StripeCatalog for std::sync::Arc<T> {
    fn product(
        &self,
        id: &ProductId,
    ) -> impl Future<Output = Result<Option<StripeProduct>, PaymentsError>> + Send {
        (**self).product(id)
    }
    fn create_product(
        &self,
        id: &ProductId,
        f: &ProductFields,
        k: &str,
    ) -> impl Future<Output = Result<StripeProduct, PaymentsError>> + Send {
        (**self).create_product(id, f, k)
    }
    fn update_product(
        &self,
        id: &ProductId,
        f: &ProductFields,
        d: Option<&PriceId>,
        k: &str,
    ) -> impl Future<Output = Result<StripeProduct, PaymentsError>> + Send {
        (**self).update_product(id, f, d, k)
    }
    fn price(
        &self,
        id: &PriceId,
    ) -> impl Future<Output = Result<Option<StripePrice>, PaymentsError>> + Send {
        (**self).price(id)
    }
    fn active_prices(
        &self,
        p: &ProductId,
    ) -> impl Future<Output = Result<Vec<StripePrice>, PaymentsError>> + Send {
        (**self).active_prices(p)
    }
    fn create_price(
        &self,
        p: &ProductId,
        m: &Money,
        k: &str,
    ) -> impl Future<Output = Result<StripePrice, PaymentsError>> + Send {
        (**self).create_price(p, m, k)
    }
    fn archive_price(
        &self,
        id: &PriceId,
    ) -> impl Future<Output = Result<(), PaymentsError>> + Send {
        (**self).archive_price(id)
    }
    fn link(
        &self,
        id: &PaymentLinkId,
    ) -> impl Future<Output = Result<Option<StripeLink>, PaymentsError>> + Send {
        (**self).link(id)
    }
    fn create_link(
        &self,
        price: &PriceId,
        s: &StoreId,
        p: &ProductId,
        k: &str,
    ) -> impl Future<Output = Result<StripeLink, PaymentsError>> + Send {
        (**self).create_link(price, s, p, k)
    }
    fn prices_page(
        &self,
        a: Option<&PriceId>,
    ) -> impl Future<Output = Result<Page<(StripePrice, StripeProduct)>, PaymentsError>> + Send
    {
        (**self).prices_page(a)
    }
    fn products_page(
        &self,
        a: Option<&ProductId>,
    ) -> impl Future<Output = Result<Page<(StripeProduct, Option<StripePrice>)>, PaymentsError>> + Send
    {
        (**self).products_page(a)
    }
    fn links_page(
        &self,
        a: Option<&PaymentLinkId>,
    ) -> impl Future<Output = Result<Page<StripeLink>, PaymentsError>> + Send {
        (**self).links_page(a)
    }
}

impl<T: CursorStore> CursorStore for std::sync::Arc<T> {
    fn cursor(&self) -> impl Future<Output = Result<Option<Cursor>, StoreError>> + Send {
        (**self).cursor()
    }
    fn advance_cursor(
        &self,
        previous: Option<&Cursor>,
        next: &Cursor,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).advance_cursor(previous, next)
    }
}

impl<T: EventLog> EventLog for std::sync::Arc<T> {
    fn events_between(
        &self,
        types: &[&str],
        from: i64,
        to: i64,
    ) -> impl Future<Output = Result<Vec<LoggedEvent>, PaymentsError>> + Send {
        (**self).events_between(types, from, to)
    }
}

impl<T: ParkingLot> ParkingLot for std::sync::Arc<T> {
    fn parked(&self) -> impl Future<Output = Result<Vec<Parked>, StoreError>> + Send {
        (**self).parked()
    }
    fn save_parked(&self, r: &Parked) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).save_parked(r)
    }
    fn remove_parked(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).remove_parked(id)
    }
}

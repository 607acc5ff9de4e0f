//! Sharded stock (`stockbridge_domain::shard`, issue 13 §4) in the use cases: spreading and
//! collecting a product (`stockbridge stock shard`), the view every other decision takes of a
//! spread product, and the inventory's take from a shard.
//!
//! The rule every path follows: only a take, a refill and a give-back write a spread product;
//! anything else that would write its item collects it first (the store refuses an item write
//! to a spread item, so a path that forgot cannot count units twice).

use stockbridge_domain::shard::{self, Refill};
use stockbridge_domain::take::{StockTake, take_of, with_take};
use stockbridge_domain::{
    CatalogItem, CheckoutFacts, Decision, Items, OrderId, OrderRecord, ProductId, StoreId,
    Timestamp, decide_checkout,
};
use tracing::{debug, info};

use crate::orders::Services;
use crate::ports::{Clock, InventoryStore, Payments, StockPublisher, StoreError};
use crate::retry::backoff;

/// Attempts of a spread or a collect against concurrent takes before giving up.
const REGROUP_ATTEMPTS: u32 = 12;

/// Why a product could not be spread.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// No such item.
    #[error("product {product_id} is not in the catalog of store {store_id}")]
    NotFound {
        /// The store.
        store_id: StoreId,
        /// The product.
        product_id: ProductId,
    },
    /// Too many shards.
    #[error("at most {max} shards (asked for {asked})", max = shard::MAX_SHARDS)]
    TooMany {
        /// What was asked.
        asked: u16,
    },
    /// Links recorded as switched off: its restock switches them on first.
    #[error(
        "{product_id} has payment links stockbridge switched off ({links}); restock it first so they are switched back on"
    )]
    LinksOff {
        /// The product.
        product_id: ProductId,
        /// The links.
        links: String,
    },
    /// Concurrent orders kept changing it.
    #[error(
        "the stock of {0} kept changing under concurrent orders; nothing was written, try again"
    )]
    Contention(ProductId),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Collects a spread product (step 4): freezes its shards, then moves their units and the marks
/// of unrecorded takes back to the item. `false`: it was not spread.
///
/// # Errors
/// The store's; [`StoreError::Conflict`] when it kept changing.
pub async fn collect<S: InventoryStore>(
    store: &S,
    store_id: &StoreId,
    product_id: &ProductId,
    now: Timestamp,
) -> Result<bool, StoreError> {
    collect_spread(store, store_id, product_id, None, now).await
}

/// [`collect`], only while the product is spread under `epoch` (a delivery that read an earlier
/// spread must not collect a newer one).
pub(crate) async fn collect_spread<S: InventoryStore>(
    store: &S,
    store_id: &StoreId,
    product_id: &ProductId,
    epoch: Option<u64>,
    now: Timestamp,
) -> Result<bool, StoreError> {
    for attempt in 0..REGROUP_ATTEMPTS {
        let Some(item) = store.item(store_id, product_id).await? else {
            return Ok(false);
        };
        let Some(spread) = item.spread.filter(|s| epoch.is_none_or(|e| e == s.epoch)) else {
            return Ok(false);
        };
        // Frozen, no take or move lands on a shard any more: the collect cannot race a rush.
        let frozen = store
            .freeze_shards(store_id, product_id, spread.shards, spread.epoch)
            .await;
        if let Err(StoreError::Conflict) = frozen {
            backoff(attempt + 1).await;
            continue;
        }
        frozen?;
        let shards = store
            .read_shards(store_id, product_id, spread.shards)
            .await?;
        match store.regroup(&shard::collect(&item, &shards, now)).await {
            Ok(()) => {
                info!(store = %store_id, product = %product_id, "collected a spread product");
                return Ok(true);
            }
            Err(StoreError::Conflict) => backoff(attempt + 1).await,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict)
}

/// Spreads a product's available units over `shards` shard items (`stockbridge stock shard`);
/// `shards` ≤ 1 collects it instead. A product spread over another number is collected first.
/// Returns the item as it is after.
///
/// # Errors
/// [`ShardError`].
pub async fn spread<S: InventoryStore>(
    store: &S,
    store_id: &StoreId,
    product_id: &ProductId,
    shards: u16,
    now: Timestamp,
) -> Result<CatalogItem, ShardError> {
    if shards > shard::MAX_SHARDS {
        return Err(ShardError::TooMany { asked: shards });
    }
    let not_found = || ShardError::NotFound {
        store_id: store_id.clone(),
        product_id: product_id.clone(),
    };
    for attempt in 0..REGROUP_ATTEMPTS {
        let item = store
            .item(store_id, product_id)
            .await?
            .ok_or_else(not_found)?;
        match item.spread {
            Some(s) if s.shards == shards => return Ok(item),
            Some(_) => {
                collect(store, store_id, product_id, now).await?;
                continue;
            }
            None if shards <= 1 => return Ok(item),
            None => {}
        }
        if !item.deactivated_links.is_empty() {
            return Err(ShardError::LinksOff {
                product_id: product_id.clone(),
                links: item
                    .deactivated_links
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let current = store.read_shards(store_id, product_id, shards).await?;
        // The version the spread gives the item: never an earlier spread's epoch, so takes
        // decided on an earlier spread are refused.
        let plan = shard::spread(&item, &current, shards, item.version + 1, now);
        match store.regroup(&plan).await {
            Ok(()) => {
                info!(store = %store_id, product = %product_id, shards, "spread a product over shards");
                return store
                    .item(store_id, product_id)
                    .await?
                    .ok_or_else(not_found);
            }
            Err(StoreError::Conflict) => backoff(attempt + 1).await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ShardError::Contention(product_id.clone()))
}

/// Items as a decision other than a take sees them: a spread item with every unit its shards
/// hold counted as available, and the level's version. Such a decision may publish or switch
/// from this view, never write the item: one that writes collects first ([`writes_spread`]).
///
/// # Errors
/// The store's.
pub async fn as_collected<S: InventoryStore>(
    store: &S,
    items: &Items,
) -> Result<Items, StoreError> {
    let mut view = items.clone();
    for item in view.values_mut() {
        let Some(spread) = item.spread else { continue };
        let shards = store
            .read_shards(&item.store_id, &item.product_id, spread.shards)
            .await?;
        let (available, version) = shard::level(item.available, item.version, &shards);
        item.available = available;
        item.version = version;
        item.spread = Some(stockbridge_domain::Spread {
            available: 0,
            versions: 0,
            ..spread
        });
    }
    Ok(view)
}

/// The spread products a decision would write (its items or its version checks).
pub fn writes_spread(decision: &Decision, items: &Items) -> Vec<ProductId> {
    let write = &decision.write;
    write
        .items
        .iter()
        .map(|u| &u.product_id)
        .chain(write.checks.iter().map(|(_, p, _)| p))
        .filter(|p| items.get(*p).is_some_and(|i| i.spread.is_some()))
        .cloned()
        .collect()
}

/// Units a spread item is decided on in the take path: enough for any order, so the decision is
/// the take's shape whenever the order is; the shard's condition decides whether it has them.
const VIRTUAL_STOCK: u64 = 1 << 40;

/// What the shard path did.
pub(crate) enum ShardSale {
    /// Taken from a shard and recorded: the decision, its write done.
    Sold(Box<Decision>),
    /// Read again and decide again (the product was collected, or spread anew).
    Again,
    /// Not a take: decide on the collected view ([`as_collected`]).
    NotTake,
}

impl<Store: InventoryStore, Publisher: StockPublisher, Stripe: Payments, Time: Clock>
    Services<Store, Publisher, Stripe, Time>
{
    /// The take path of a spread product (steps 2-4 of `stockbridge_domain::shard`): a new
    /// simple order takes from its home shard, refilling it from the others when it runs dry,
    /// and collects the product when no shard can spare enough.
    pub(crate) async fn sell_from_shards(
        &self,
        existing: Option<&OrderRecord>,
        facts: &CheckoutFacts,
        items: &Items,
        now: Timestamp,
    ) -> Result<ShardSale, StoreError> {
        let spread: Vec<&CatalogItem> = items.values().filter(|i| i.spread.is_some()).collect();
        let ([item], None) = (spread.as_slice(), existing) else {
            return Ok(ShardSale::NotTake);
        };
        let spread = item.spread.expect("filtered");
        let mut virtual_items = items.clone();
        if let Some(v) = virtual_items.get_mut(&item.product_id) {
            v.available = VIRTUAL_STOCK;
        }
        let decision = decide_checkout(None, facts, &virtual_items, now);
        let Some(take) = take_of(&decision) else {
            return Ok(ShardSale::NotTake);
        };
        let home = shard::home(&facts.order_id, spread.shards);
        let take = StockTake {
            shard: Some((home, spread.epoch)),
            ..take
        };
        for attempt in 0..self.config.max_attempts.max(4) * 2 {
            match self.store.take_stock(&take).await {
                Ok(Some(mark)) => return self.record_shard_take(&take, decision, mark).await,
                Ok(None) => {}
                Err(StoreError::Conflict) => {
                    backoff(attempt + 1).await;
                    continue;
                }
                Err(e) => return Err(e),
            }
            // Refused: the order's own mark (an earlier delivery took), another spread or a
            // collect under way, or too few units on the home shard.
            let mark = self
                .store
                .shard_mark(&take.store_id, &take.product_id, home, &take.order_id)
                .await?;
            if let Some(mark) = mark {
                return self
                    .record_earlier_take(&take, facts, items, mark, now)
                    .await;
            }
            let shards = self
                .store
                .read_shards(&take.store_id, &take.product_id, spread.shards)
                .await?;
            if shards.iter().any(|s| s.epoch != spread.epoch) {
                // Frozen by a collect under way (finish it), or spread anew (read again).
                return self.collect_for(&take, spread.epoch).await;
            }
            match shard::refill(&shards, home, take.quantity) {
                // Enough on the home shard, yet refused: units moved in meanwhile; take again.
                Refill::TakeAgain => {}
                Refill::Move(m) => {
                    let Some(plan) = shard::moved(item, &shards, m, now) else {
                        return Ok(ShardSale::Again);
                    };
                    match self.store.regroup(&plan).await {
                        Ok(()) => {
                            debug!(product = %take.product_id, from = m.from.0, to = m.to.0, units = m.units, "refilled a shard")
                        }
                        // Another refill, a take or a collect got there first: read again.
                        Err(StoreError::Conflict) => return Ok(ShardSale::Again),
                        Err(e) => return Err(e),
                    }
                }
                Refill::Collect => return self.collect_for(&take, spread.epoch).await,
            }
        }
        // Taken from under it again and again: read everything again.
        Ok(ShardSale::Again)
    }

    async fn collect_for(&self, take: &StockTake, epoch: u64) -> Result<ShardSale, StoreError> {
        let now = self.clock.now();
        collect_spread(
            &self.store,
            &take.store_id,
            &take.product_id,
            Some(epoch),
            now,
        )
        .await?;
        Ok(ShardSale::Again)
    }

    /// Records a take from a shard: the order and its ledger entry under the shard's key. A
    /// record refused (another delivery recorded the order since this one read it) makes the
    /// take a duplicate: it is given back and the order decided again.
    async fn record_shard_take(
        &self,
        take: &StockTake,
        decision: Decision,
        mark: stockbridge_domain::take::TakeMark,
    ) -> Result<ShardSale, StoreError> {
        if let Some(hook) = &self.after_take {
            hook();
        }
        let mut decision = with_take(decision, mark);
        for entry in &mut decision.write.ledger {
            entry.shard = mark.shard;
        }
        // The broadcaster publishes a spread product's level: the shard's alone is not it.
        decision.effects.publish.clear();
        match self.store.record_take(take, &decision.write).await {
            Ok(()) => {
                decision.write = stockbridge_domain::WriteSet::default();
                Ok(ShardSale::Sold(Box::new(decision)))
            }
            Err(StoreError::Conflict) => {
                let home = take.shard.map(|(i, _)| i);
                self.give_back_take(&take.order_id, &take.store_id, &take.product_id, home)
                    .await?;
                Err(StoreError::Conflict)
            }
            Err(e) => Err(e),
        }
    }

    /// An earlier delivery's take on the home shard, not recorded: record it as it was made.
    async fn record_earlier_take(
        &self,
        take: &StockTake,
        facts: &CheckoutFacts,
        items: &Items,
        mark: stockbridge_domain::take::TakeMark,
        now: Timestamp,
    ) -> Result<ShardSale, StoreError> {
        let mut marked = items.clone();
        if let Some(i) = marked.get_mut(&take.product_id) {
            i.unrecorded_take = Some(mark);
        }
        let mut decision = decide_checkout(None, facts, &marked, now);
        decision.effects.publish.clear();
        match self.store.record_take(take, &decision.write).await {
            Ok(()) => {
                decision.write = stockbridge_domain::WriteSet::default();
                Ok(ShardSale::Sold(Box::new(decision)))
            }
            Err(e) => Err(e),
        }
    }

    /// A spread product's item and every shard against their own ledgers
    /// ([`stockbridge_domain::invariants::check_shard_ledger`]).
    pub(crate) async fn check_spread(
        &self,
        item: &CatalogItem,
        shards: u16,
    ) -> Result<Vec<stockbridge_domain::invariants::Discrepancy>, StoreError> {
        let (s, p) = (&item.store_id, &item.product_id);
        let mut found = Vec::new();
        let entry = self.store.ledger_entry(s, p, None, item.version).await?;
        found.extend(stockbridge_domain::invariants::check_shard_ledger(
            item,
            None,
            (item.available, item.version),
            entry.as_ref(),
        ));
        for shard in self.store.read_shards(s, p, shards).await? {
            let entry = self
                .store
                .ledger_entry(s, p, Some(shard.index), shard.version)
                .await?;
            found.extend(stockbridge_domain::invariants::check_shard_ledger(
                item,
                Some(shard.index),
                (shard.available, shard.version),
                entry.as_ref(),
            ));
        }
        Ok(found)
    }

    /// Gives back a duplicate take of `order_id` found on the home shard of a spread product
    /// whose order is recorded (a delivery that stopped before giving it back).
    pub(crate) async fn give_back_from_home(
        &self,
        order_id: &OrderId,
        items: &Items,
    ) -> Result<bool, StoreError> {
        let mut given_back = false;
        for item in items.values() {
            if let Some(spread) = item.spread {
                let home = shard::home(order_id, spread.shards);
                given_back |= self
                    .give_back_take(order_id, &item.store_id, &item.product_id, Some(home))
                    .await?;
            }
        }
        Ok(given_back)
    }
}

/// [`InventoryStore::load`] for a decision that writes items (a hold, a delayed payment's
/// outcome): a spread product among them is collected first, then everything read again.
///
/// # Errors
/// The store's.
pub async fn load_collected<S: InventoryStore>(
    store: &S,
    order_id: &OrderId,
    store_id: &StoreId,
    products: &[ProductId],
    now: Timestamp,
) -> Result<(Option<OrderRecord>, Items), StoreError> {
    let loaded = store.load(order_id, store_id, products).await?;
    let spread: Vec<ProductId> = loaded
        .1
        .values()
        .filter(|i| i.spread.is_some())
        .map(|i| i.product_id.clone())
        .collect();
    if spread.is_empty() {
        return Ok(loaded);
    }
    for product in &spread {
        collect(store, store_id, product, now).await?;
    }
    store.load(order_id, store_id, products).await
}

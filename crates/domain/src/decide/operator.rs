//! An operator's changes: a level set, adjusted or recounted, and a new catalog item.

use super::*;

/// An operator's change to a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockChange {
    /// Set the level to this many units (a restock): the management boundary stays, so an
    /// order paid before it and delivered late still counts.
    Set(u64),
    /// Set the level to a count the merchant just made that already includes every sale paid
    /// before it: the item's management boundary moves to now.
    Recount(u64),
    /// Add (or, negative, remove) units.
    Adjust(i64),
}

/// Why a stock change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockChangeError {
    /// The adjustment would take the level below zero.
    #[error(
        "adjusting {product_id} by {delta} would take its stock below zero (it has {available})"
    )]
    BelowZero {
        /// The product.
        product_id: ProductId,
        /// The requested delta.
        delta: i64,
        /// The current level.
        available: u64,
    },
    /// A count below what pending checkouts hold.
    #[error(
        "{product_id}: {held} units are held by pending checkouts, so on hand cannot be set to {on_hand}; set at least {held}, or wait for the holds to settle"
    )]
    BelowHeld {
        /// The product.
        product_id: ProductId,
        /// The requested count.
        on_hand: u64,
        /// Units held now.
        held: u64,
    },
    /// The adjustment overflows.
    #[error("adjusting {product_id} by {delta} overflows")]
    Overflow {
        /// The product.
        product_id: ProductId,
        /// The requested delta.
        delta: i64,
    },
}

/// An operator sets or adjusts a level. A restock from 0 switches back on the links stockbridge
/// switched off; reaching 0 switches them off. The result is published.
///
/// # Errors
/// [`StockChangeError`] when the change would take the level below zero or overflow.
pub fn decide_stock_change(
    item: &CatalogItem,
    change: StockChange,
    actor: &str,
    now: Timestamp,
) -> Result<Decision, StockChangeError> {
    let (available, kind) = match change {
        // The merchant counts what is on the shelf, held units included: those are still
        // theirs until paid, and come back to `available` if the holds lapse.
        StockChange::Set(n) | StockChange::Recount(n) => {
            let available =
                n.checked_sub(item.held)
                    .ok_or_else(|| StockChangeError::BelowHeld {
                        product_id: item.product_id.clone(),
                        on_hand: n,
                        held: item.held,
                    })?;
            (available, CauseKind::Set)
        }
        StockChange::Adjust(delta) => {
            let new = i128::from(item.available) + i128::from(delta);
            if new < 0 {
                return Err(StockChangeError::BelowZero {
                    product_id: item.product_id.clone(),
                    delta,
                    available: item.available,
                });
            }
            let new = u64::try_from(new).map_err(|_| StockChangeError::Overflow {
                product_id: item.product_id.clone(),
                delta,
            })?;
            (new, CauseKind::Adjust)
        }
    };
    let cause = Cause {
        kind,
        stripe_event_id: None,
        order_id: None,
        actor: Some(actor.to_owned()),
    };
    let mut write = WriteSet::default();
    let mut effects = Effects::default();
    let mut m = move_stock(item, available, item.held, None, cause, now);
    // A recount already includes every sale paid before it: a new management boundary. A
    // restock or an adjustment is relative to what stockbridge tracked: the boundary stays,
    // and an order paid before it that arrives late still takes its unit (or is refunded).
    if matches!(change, StockChange::Recount(_)) {
        m.update.managed_since = now;
    }
    // Sold out (nothing to sell: what buyers saw) and now for sale again by the merchant's
    // hand: the waitlist hears of it. Recorded in the same write, so it is never lost.
    if item.available == 0 && available > 0 {
        write.restock = Some(Restock {
            store_id: item.store_id.clone(),
            product_id: item.product_id.clone(),
            version: m.update.version,
            available,
            at: now,
        });
    }
    add_movement(&mut write, &mut effects, m);
    // The links' limits follow the merchant's count (a restock's switch-on sets its own).
    effects
        .guard
        .push((item.store_id.clone(), item.product_id.clone()));
    Ok(Decision {
        write,
        effects,
        outcome: Outcome::StockChanged,
    })
}

/// A new catalog item and the ledger entry of its first level. An item created at 0 has its
/// links switched off (and recorded) like any sold-out item; its level is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    /// The item to create.
    pub item: CatalogItem,
    /// Its first ledger entry.
    pub entry: LedgerEntry,
    /// Effects after the create.
    pub effects: Effects,
}

/// Creates a catalog item with `stock` units.
///
/// # Errors
/// [`StockChangeError::Overflow`] when `stock` does not fit a ledger delta.
pub fn decide_new_item(
    store_id: StoreId,
    product_id: ProductId,
    name: String,
    stock: u64,
    payment_links: Vec<PaymentLinkId>,
    actor: &str,
    now: Timestamp,
) -> Result<NewItem, StockChangeError> {
    let delta = i64::try_from(stock).map_err(|_| StockChangeError::Overflow {
        product_id: product_id.clone(),
        delta: i64::MAX,
    })?;
    let deactivated_links = if stock == 0 {
        payment_links.clone()
    } else {
        Vec::new()
    };
    let item = CatalogItem {
        store_id,
        product_id,
        name,
        available: stock,
        held: 0,
        version: 1,
        payment_links,
        deactivated_links,
        updated_at: now,
        managed_since: now,
        unrecorded_take: None,
        spread: None,
        low_stock: None,
    };
    let entry = LedgerEntry {
        store_id: item.store_id.clone(),
        product_id: item.product_id.clone(),
        version: 1,
        delta,
        level: stock,
        held: 0,
        operation: None,
        cause: Cause {
            kind: CauseKind::Set,
            stripe_event_id: None,
            order_id: None,
            actor: Some(actor.to_owned()),
        },
        at: now,
        shard: None,
    };
    let effects = Effects {
        publish: vec![item.level()],
        deactivate: Deactivation::of(&item, item.deactivated_links.clone(), Vec::new())
            .into_iter()
            .collect(),
        guard: vec![(item.store_id.clone(), item.product_id.clone())],
        ..Effects::default()
    };
    Ok(NewItem {
        item,
        entry,
        effects,
    })
}

//! Stock movements: the item update, its ledger entry, the level to publish and the links to
//! switch when the level crosses zero.

use super::*;

pub(super) fn union(
    a: &[PaymentLinkId],
    b: impl IntoIterator<Item = PaymentLinkId>,
) -> Vec<PaymentLinkId> {
    let mut out = a.to_vec();
    for l in b {
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

/// Records `links` as the links stockbridge switched off for `item`, without a stock change
/// (same version), conditional on the record it read.
pub fn record_links_off(item: &CatalogItem, links: Vec<PaymentLinkId>) -> ItemUpdate {
    ItemUpdate {
        store_id: item.store_id.clone(),
        product_id: item.product_id.clone(),
        expected_version: item.version,
        available: item.available,
        held: item.held,
        version: item.version,
        expected_deactivated_links: item.deactivated_links.clone(),
        deactivated_links: links,
        at: item.updated_at,
        managed_since: item.managed_since,
    }
}

/// The links to switch off when `item` sells out: its own links and the session's link.
pub(super) fn sold_out_links(
    item: &CatalogItem,
    session_link: Option<&PaymentLinkId>,
) -> Vec<PaymentLinkId> {
    union(
        &item.deactivated_links,
        item.payment_links
            .iter()
            .cloned()
            .chain(session_link.cloned()),
    )
}

/// The switch-offs for `item` at 0, given every link that should be off: those not yet recorded
/// (recorded by this decision, forgotten again if found off with someone else's message) and
/// those recorded earlier (made sure of: a late switch-on may have landed).
pub(super) fn sold_out_switches(
    item: &CatalogItem,
    links: &[PaymentLinkId],
) -> Option<Deactivation> {
    let fresh = links
        .iter()
        .filter(|l| !item.deactivated_links.contains(l))
        .cloned()
        .collect();
    Deactivation::of(item, fresh, item.deactivated_links.clone())
}

/// Forgets `links` as switched off by stockbridge for `item` (someone else's, or replaced),
/// without a stock change, conditional on the record it read; `None` when none is recorded.
pub fn forget_links_off(item: &CatalogItem, links: &[PaymentLinkId]) -> Option<ItemUpdate> {
    let rest: Vec<PaymentLinkId> = item
        .deactivated_links
        .iter()
        .filter(|l| !links.contains(l))
        .cloned()
        .collect();
    (rest != item.deactivated_links).then(|| record_links_off(item, rest))
}

/// A stock movement on one item: the update, its ledger entry, the level to publish and the
/// links to switch off or on when the level crosses zero.
pub(crate) struct Movement {
    pub(super) update: ItemUpdate,
    pub(super) entry: LedgerEntry,
    pub(super) level: StockLevel,
    pub(super) deactivate: Vec<Deactivation>,
    pub(super) reactivate: Option<Reactivation>,
}

pub(crate) fn move_stock(
    item: &CatalogItem,
    available: u64,
    held: u64,
    session_link: Option<&PaymentLinkId>,
    cause: Cause,
    now: Timestamp,
) -> Movement {
    let version = item.version + 1;
    // At 0 every link selling the product is switched off and recorded. Above 0, links still
    // recorded as switched off (a restock, or an earlier reactivation that failed) are switched
    // back on; they stay recorded until that succeeds.
    let (deactivated_links, deactivate, reactivate) = if available == 0 {
        let links = sold_out_links(item, session_link);
        let off = sold_out_switches(item, &links).into_iter().collect();
        (links, off, None)
    } else {
        (
            item.deactivated_links.clone(),
            Vec::new(),
            Reactivation::of(item),
        )
    };
    let delta = i128::from(available) - i128::from(item.available);
    Movement {
        update: ItemUpdate {
            store_id: item.store_id.clone(),
            product_id: item.product_id.clone(),
            expected_version: item.version,
            available,
            held,
            version,
            expected_deactivated_links: item.deactivated_links.clone(),
            deactivated_links,
            at: now,
            managed_since: item.managed_since,
        },
        entry: LedgerEntry {
            store_id: item.store_id.clone(),
            product_id: item.product_id.clone(),
            version,
            delta: i64::try_from(delta).unwrap_or(if delta < 0 { i64::MIN } else { i64::MAX }),
            level: available,
            held,
            operation: None,
            cause,
            at: now,
            shard: None,
        },
        level: StockLevel {
            product_id: item.product_id.clone(),
            store_id: item.store_id.clone(),
            available,
            held,
            version,
            updated_at: now,
        },
        deactivate,
        reactivate,
    }
}

/// Returns every line's units to its item: from `held` while the order is `Pending` (a released
/// hold, a failed delayed payment), from the sale otherwise (a sale that cannot be paid).
pub(crate) fn return_stock(
    order: &OrderRecord,
    items: &Items,
    cause: &Cause,
    now: Timestamp,
    write: &mut WriteSet,
    effects: &mut Effects,
) {
    for line in &order.lines {
        // A held line's item always exists: items are never deleted while orders hold them.
        let Some(item) = items.get(&line.product_id) else {
            continue;
        };
        let q = line.quantity.get();
        let held = if order.status == OrderStatus::Pending {
            // Items stored before `held` existed hold 0 for holds made then: saturate.
            item.held.saturating_sub(q)
        } else {
            item.held
        };
        let m = move_stock(
            item,
            item.available.saturating_add(q),
            held,
            None,
            cause.clone(),
            now,
        );
        add_movement(write, effects, m);
    }
}

/// A `Pending` order is paid (`event_id`): its held units are sold. `available` is unchanged
/// (they left it when held); `held` goes down, so each item gets a new version and a ledger
/// entry (delta 0).
pub(crate) fn sell_held(
    order: &OrderRecord,
    items: &Items,
    event_id: &StripeEventId,
    now: Timestamp,
    write: &mut WriteSet,
    effects: &mut Effects,
) {
    let cause = Cause {
        kind: CauseKind::Order,
        stripe_event_id: Some(event_id.clone()),
        order_id: Some(order.order_id.clone()),
        actor: None,
    };
    for line in &order.lines {
        let Some(item) = items.get(&line.product_id) else {
            continue;
        };
        let held = item.held.saturating_sub(line.quantity.get());
        let m = move_stock(item, item.available, held, None, cause.clone(), now);
        add_movement(write, effects, m);
    }
}

pub(crate) fn add_movement(write: &mut WriteSet, effects: &mut Effects, m: Movement) {
    write.items.push(m.update);
    write.ledger.push(m.entry);
    effects.publish.push(m.level);
    effects.deactivate.extend(m.deactivate);
    effects.reactivate.extend(m.reactivate);
}

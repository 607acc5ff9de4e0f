//! The link guard at Stripe ([`stockbridge_domain::link_guard`], docs/link-guard.md): each
//! Payment Link stockbridge made gets a completed-sessions limit in step with stock, so Stripe
//! stops selling by itself when the units are gone, even when a switch-off is late.

use stockbridge_domain::{CatalogItem, PaymentLinkId, ProductId, StoreId};
use tracing::{info, warn};

use super::EffectError;
use crate::ports::{GuardOutcome, InventoryStore, Payments, StoreError};

/// The units one session of `link` buys, when it is a link stockbridge made for this item's
/// product (its terms: one product, a fixed quantity); `None` for any other link, which is
/// never limited (an adjustable quantity or several products make a session's units unknown).
pub(crate) async fn guard_quantity<S: InventoryStore>(
    store: &S,
    item: &CatalogItem,
    link: &PaymentLinkId,
) -> Result<Option<u64>, StoreError> {
    let Some(terms) = store.link_terms(link).await? else {
        return Ok(None);
    };
    // The catalog sync's links sell one unit a session, fixed. Terms allowing more would mean a
    // quantity the buyer chooses: a limit in sessions could then stop selling while units are
    // left, so such a link is never limited.
    Ok((terms.product_id == item.product_id && terms.max_quantity == 1).then_some(1))
}

/// The sessions `link` can still fill for `item` now (`available / quantity`; see
/// [`guard_quantity`]).
pub(crate) async fn guard_sessions<S: InventoryStore>(
    store: &S,
    item: &CatalogItem,
    link: &PaymentLinkId,
) -> Result<Option<u64>, StoreError> {
    Ok(guard_quantity(store, item, link)
        .await?
        .map(|q| item.level().available / q))
}

/// Sets the limits of an item's guarded links from its stock now, after a merchant's change.
/// A link stockbridge switched off, or the same change's restock switched on (`restocked`), is
/// left to the restock's switch-on (which sets its limit), a sold-out item's links to the
/// switch-off. A failure is logged and left to the reconciler,
/// which sets every guard again: the stock change stands and a guard out of step is never
/// worse than no guard.
pub(crate) async fn guard_item<S: InventoryStore, Y: Payments>(
    store: &S,
    payments: &Y,
    (store_id, product_id): &(StoreId, ProductId),
    restocked: &[&PaymentLinkId],
) {
    let item = match store.item(store_id, product_id).await {
        Ok(Some(item)) => item,
        Ok(None) => return,
        Err(e) => {
            warn!(%store_id, %product_id, error = %e, "the links' limits were not set: the reconciler sets them");
            return;
        }
    };
    let links = item.payment_links.iter();
    for link in links.filter(|l| !item.deactivated_links.contains(l) && !restocked.contains(l)) {
        let sessions = match guard_sessions(store, &item, link).await {
            Ok(Some(n)) if n > 0 => n,
            Ok(_) => continue,
            Err(e) => {
                warn!(payment_link = %link, error = %e, "the link's limit was not set: the reconciler sets it");
                continue;
            }
        };
        match payments.guard_link(link, sessions, false).await {
            Ok(GuardOutcome::Set { limit, switched_on }) => {
                info!(payment_link = %link, %product_id, limit, switched_on, "payment link limit set");
                if switched_on {
                    off_again_if_sold_out(store, payments, &item, link).await;
                }
            }
            Ok(GuardOutcome::Unchanged) => {}
            Ok(GuardOutcome::Theirs) => {
                info!(payment_link = %link, "the link has a limit someone else set: left as it is");
            }
            Err(e) => {
                warn!(payment_link = %link, error = %e, "the link's limit was not set: the reconciler sets it");
            }
        }
    }
}

/// A link the guard switched back on (it was off at stockbridge's limit) while the last units
/// went another way: off again, as the restock's switch-on does.
async fn off_again_if_sold_out<S: InventoryStore, Y: Payments>(
    store: &S,
    payments: &Y,
    item: &CatalogItem,
    link: &PaymentLinkId,
) {
    let sold_out = match store.item(&item.store_id, &item.product_id).await {
        Ok(now) => now.is_some_and(|i| i.level().available == 0),
        Err(e) => {
            warn!(payment_link = %link, error = %e, "the level after a switch-on could not be read: the reconciler checks the link");
            return;
        }
    };
    if sold_out
        && let Err(e) = payments
            .set_link_active(link, false, Some(super::SOLD_OUT_MESSAGE))
            .await
    {
        warn!(payment_link = %link, error = %e, "switching a sold-out link off again failed: the reconciler switches it off");
    }
}

/// Switches one of stockbridge's links back on (a restock, or the reconciler's repair); a
/// guarded link gets its new limit in the same request, since Stripe keeps a link at its limit
/// off. `recorded`: stockbridge switched it off itself (in `deactivated_links`), so a link
/// with a merchant's limit is still switched on; one judged stockbridge's only because Stripe
/// switched it off at stockbridge's limit is left off when the limit is now the merchant's.
/// The limit is the extra: when setting it fails, the link is switched on without it (the
/// reconciler sets it later). Whether this call switched it.
pub(crate) async fn switch_link_on<S: InventoryStore, Y: Payments>(
    store: &S,
    payments: &Y,
    item: &CatalogItem,
    link: &PaymentLinkId,
    recorded: bool,
) -> Result<bool, EffectError> {
    if let Some(sessions) = guard_sessions(store, item, link).await?.filter(|n| *n > 0) {
        match payments.guard_link(link, sessions, true).await {
            Ok(GuardOutcome::Set { switched_on, .. }) => return Ok(switched_on),
            Ok(GuardOutcome::Unchanged) => return Ok(false),
            Ok(GuardOutcome::Theirs) if !recorded => {
                info!(payment_link = %link, "the limit is now the merchant's: the link is left as it is");
                return Ok(false);
            }
            // A merchant's own limit on a link stockbridge switched off: switched on as any.
            Ok(GuardOutcome::Theirs) => {}
            Err(e) => {
                warn!(payment_link = %link, error = %e, "the link's limit could not be set: switched on without it");
            }
        }
    }
    Ok(payments.set_link_active(link, true, None).await?.switched())
}

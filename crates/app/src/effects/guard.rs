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
    Ok(
        (terms.product_id == item.product_id && terms.max_quantity > 0)
            .then_some(terms.max_quantity),
    )
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
/// A link stockbridge switched off is left to the restock's switch-on (which sets its limit),
/// a sold-out item's links to the switch-off. A failure is logged and left to the reconciler,
/// which sets every guard again: the stock change stands and a guard out of step is never
/// worse than no guard.
pub(crate) async fn guard_item<S: InventoryStore, Y: Payments>(
    store: &S,
    payments: &Y,
    (store_id, product_id): &(StoreId, ProductId),
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
    for link in links.filter(|l| !item.deactivated_links.contains(l)) {
        let sessions = match guard_sessions(store, &item, link).await {
            Ok(Some(n)) if n > 0 => n,
            Ok(_) => continue,
            Err(e) => {
                warn!(payment_link = %link, error = %e, "the link's limit was not set: the reconciler sets it");
                continue;
            }
        };
        match payments.guard_link(link, sessions, false).await {
            Ok(GuardOutcome::Set { limit }) => {
                info!(payment_link = %link, %product_id, limit, "payment link limit set");
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

/// Switches one of stockbridge's links back on (a restock); a guarded link gets its new limit
/// in the same request, since Stripe keeps a link at its limit off. Whether this call switched
/// it.
pub(crate) async fn switch_link_on<S: InventoryStore, Y: Payments>(
    store: &S,
    payments: &Y,
    item: &CatalogItem,
    link: &PaymentLinkId,
) -> Result<bool, EffectError> {
    if let Some(sessions) = guard_sessions(store, item, link).await?.filter(|n| *n > 0) {
        match payments.guard_link(link, sessions, true).await? {
            GuardOutcome::Set { .. } => return Ok(true),
            GuardOutcome::Unchanged => return Ok(false),
            // A merchant's own limit: switched on as any other link.
            GuardOutcome::Theirs => {}
        }
    }
    Ok(payments.set_link_active(link, true, None).await?.switched())
}

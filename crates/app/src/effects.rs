//! Running a decision's side effects. Every effect is idempotent, so running them again after a
//! crash or a redelivery is safe; all are attempted even when one fails, and the first failure is
//! returned so the invocation fails and is retried.

use stockbridge_domain::{
    Deactivation, Effects, IntentAction, PaymentLinkId, Reactivation, RefundId, Timestamp,
    WriteSet, forget_links_off,
};
use tracing::{info, warn};

use crate::ports::{
    Controls, DynMerchantEvents, IntentStatus, InventoryStore, LinkSwitch, NotifyError, Payments,
    PaymentsError, PublishError, StockPublisher, StoreError,
};

pub(crate) mod guard;

/// A side effect that failed after the commit. The committed state is safe; the effect is re-run
/// on redelivery.
#[derive(Debug, thiserror::Error)]
pub enum EffectError {
    /// Publishing a level failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// A Stripe call (link switch or refund) failed.
    #[error("Stripe side effect failed: {0}")]
    Payments(#[from] PaymentsError),
    /// Recording the refund failed.
    #[error("recording the refund failed: {0}")]
    Store(#[from] StoreError),
    /// Publishing `stockbridge.order_refunded` failed (the refund is made, not recorded: a
    /// retry finds the same refund and publishes again).
    #[error("publishing the refund's event failed: {0}")]
    Event(#[source] NotifyError),
    /// Stripe refused for good to capture a sale's PaymentIntent: it is no longer capturable
    /// (`status`), so the sale cannot be paid. The caller returns the stock.
    #[error("the PaymentIntent cannot be captured any more (status {status})")]
    CaptureRefused {
        /// Its Stripe status.
        status: String,
    },
}

impl EffectError {
    /// Whether running the effect again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Publish(_) | Self::Event(_) => true,
            Self::Payments(e) => e.is_retryable(),
            Self::Store(e) => e.is_retryable(),
            Self::CaptureRefused { .. } => false,
        }
    }
}

/// The refund id recorded for an order someone refunded before stockbridge could.
pub const REFUNDED_OUTSIDE: &str = "refunded_outside_stockbridge";

/// The merchant's event for a refund stockbridge made (`stockbridge_domain::after_sale::OrderRefunded`).
pub const ORDER_REFUNDED: &str = "stockbridge.order_refunded";

/// The message Stripe shows on a link stockbridge switched off.
pub const SOLD_OUT_MESSAGE: &str = "Sold out. Check back soon!";

/// Runs `effects`: publish every level, switch links off/on, refund and record the refund.
///
/// # Errors
/// The first [`EffectError`]; every other effect was still attempted.
pub async fn run_effects<S, P, Y>(
    (store, publisher, payments): (&S, &P, &Y),
    events: &dyn DynMerchantEvents,
    effects: &Effects,
    now: Timestamp,
) -> Result<(), EffectError>
where
    S: InventoryStore,
    P: StockPublisher,
    Y: Payments,
{
    let mut first: Option<EffectError> = None;
    let mut keep = |r: Result<(), EffectError>| {
        if let Err(e) = r {
            warn!(error = %e, "side effect failed");
            // A refused capture must reach the caller, which returns the stock: it wins over a
            // failure that a retry repairs.
            if matches!(e, EffectError::CaptureRefused { .. }) {
                first = Some(e);
            } else {
                first.get_or_insert(e);
            }
        }
    };
    for level in &effects.publish {
        keep(publisher.publish(level).await.map_err(Into::into));
    }
    // The operator's switches (`stockbridge pause`), read only when they matter.
    let controls = if effects.deactivate.is_empty()
        && effects.reactivate.is_empty()
        && effects.guard.is_empty()
        && effects.refund.is_none()
    {
        Controls::default()
    } else {
        match store.controls().await {
            Ok(c) => c,
            Err(e) => {
                // Unknown switches: act on nothing they govern; the retry reads them again.
                keep(Err(e.into()));
                Controls {
                    links_paused: true,
                    refunds_paused: true,
                    repairs_paused: true,
                }
            }
        }
    };
    let links = !(effects.deactivate.is_empty() && effects.reactivate.is_empty());
    if controls.links_paused && links {
        warn!(
            "payment link switches are paused (`stockbridge resume links`): none made; the reconciler makes them after resume"
        );
    }
    for d in effects.deactivate.iter().filter(|_| !controls.links_paused) {
        keep(switch_off(store, payments, d).await);
    }
    for r in effects.reactivate.iter().filter(|_| !controls.links_paused) {
        keep(switch_on(store, payments, r).await);
    }
    // A link the restock above switched on already has its new limit: not read again.
    let restocked: Vec<&PaymentLinkId> = effects.reactivate.iter().flat_map(|r| &r.links).collect();
    for g in effects.guard.iter().filter(|_| !controls.links_paused) {
        guard::guard_item(store, payments, g, &restocked).await;
    }
    if let Some(req) = &effects.refund {
        if controls.refunds_paused {
            warn!(order_id = %req.order_id, "refunds are paused (`stockbridge resume refunds`): the order stays due; the reconciler refunds it after resume");
        } else {
            keep(refund(store, payments, events, req, now).await);
        }
    }
    if let Some(c) = &effects.capture {
        keep(capture(payments, c).await);
    }
    if let Some(c) = &effects.cancel {
        let r = match payments
            .cancel_payment_intent(&c.payment_intent, &c.idempotency_key)
            .await
        {
            Ok(()) => {
                info!(hold = %c.order_id, payment_intent = %c.payment_intent, "authorisation cancelled: the hold could not be filled");
                Ok(())
            }
            Err(PaymentsError::UnexpectedState { message, .. }) => {
                warn!(hold = %c.order_id, payment_intent = %c.payment_intent, %message, "cancel refused for the PaymentIntent's state: nothing more to do");
                Ok(())
            }
            Err(e) => Err(e.into()),
        };
        keep(r);
    }
    first.map_or(Ok(()), Err)
}

/// Captures a sale's PaymentIntent. A refusal is judged by the PaymentIntent's `status`, read
/// back, never by Stripe's error text: `succeeded` is a capture already made (outside this
/// key's 24 hours, or by hand); `canceled` can never be captured
/// ([`EffectError::CaptureRefused`]); anything else (`requires_capture`, `processing`, ...) is
/// a refusal worth retrying.
async fn capture<Y: Payments>(payments: &Y, c: &IntentAction) -> Result<(), EffectError> {
    let refusal = match payments
        .capture_payment_intent(&c.payment_intent, &c.idempotency_key)
        .await
    {
        Ok(()) => {
            info!(hold = %c.order_id, payment_intent = %c.payment_intent, "payment captured: the hold is a sale");
            return Ok(());
        }
        Err(e) if e.is_retryable() => return Err(e.into()),
        Err(e) => e,
    };
    match payments.payment_intent_status(&c.payment_intent).await? {
        IntentStatus::Succeeded => {
            warn!(hold = %c.order_id, payment_intent = %c.payment_intent, "already captured");
            Ok(())
        }
        IntentStatus::Canceled => Err(EffectError::CaptureRefused {
            status: IntentStatus::Canceled.as_str().to_owned(),
        }),
        _ => Err(refusal.into()),
    }
}

/// Switches an item's recorded links back on at restock, if it is still in stock, and forgets
/// those that are on. A sell-out that commits between the read and the switch finds the link
/// still off and does nothing, so the level is read again afterwards: sold out by then, the
/// links go back off (and stay recorded).
async fn switch_on<S: InventoryStore, Y: Payments>(
    store: &S,
    payments: &Y,
    r: &Reactivation,
) -> Result<(), EffectError> {
    let Some(item) = store.item(&r.store_id, &r.product_id).await? else {
        return Ok(());
    };
    // The level at call time decides: sold out again since, the sell-out owns the links.
    if item.available == 0 {
        info!(product_id = %r.product_id, "sold out again since the restock: links left off");
        return Ok(());
    }
    let mut first = None;
    let mut on = Vec::new();
    // Only links still recorded as stockbridge's: one replaced since (an old price) or found to
    // be someone else's stays as it is.
    for link in r
        .links
        .iter()
        .filter(|l| item.deactivated_links.contains(l))
    {
        match guard::switch_link_on(store, payments, &item, link, true).await {
            Ok(switched) => {
                if switched {
                    info!(payment_link = %link, product_id = %r.product_id, "payment link switched back on: restocked");
                }
                on.push(link.clone());
            }
            Err(e) => {
                warn!(payment_link = %link, error = %e, "switching a restocked link on failed");
                first.get_or_insert(e);
            }
        }
    }
    if on.is_empty() {
        return first.map_or(Ok(()), Err);
    }
    if store
        .item(&r.store_id, &r.product_id)
        .await?
        .is_some_and(|now| now.available == 0)
    {
        warn!(product_id = %r.product_id, "sold out while its links were switched on: switching them off again");
        for link in &on {
            if let Err(e) = payments
                .set_link_active(link, false, Some(SOLD_OUT_MESSAGE))
                .await
            {
                first.get_or_insert(EffectError::from(e));
            }
        }
        return first.map_or(Ok(()), Err);
    }
    // A link whose switch failed stays recorded: the next run retries it.
    store
        .clear_deactivated(&r.store_id, &r.product_id, &on)
        .await?;
    first.map_or(Ok(()), Err)
}

/// Switches off an item's links at sell-out, if it is still sold out. A link found already off
/// when the decision had just recorded it was switched off by someone else: it is forgotten, so
/// a restock never switches it on.
async fn switch_off<S: InventoryStore, Y: Payments>(
    store: &S,
    payments: &Y,
    d: &Deactivation,
) -> Result<(), EffectError> {
    let Some(item) = store.item(&d.store_id, &d.product_id).await? else {
        return Ok(());
    };
    // The level at call time decides: restocked since, the restock owns the links.
    if item.available > 0 {
        info!(product_id = %d.product_id, "restocked since the sell-out: links left on");
        return Ok(());
    }
    let mut first = None;
    let mut not_ours = Vec::new();
    let fresh = d.fresh.iter().map(|l| (l, true));
    for (link, just_recorded) in fresh.chain(d.recorded.iter().map(|l| (l, false))) {
        match payments
            .set_link_active(link, false, Some(SOLD_OUT_MESSAGE))
            .await
        {
            Ok(LinkSwitch::Switched) => {
                info!(payment_link = %link, "payment link switched off: sold out");
            }
            // Someone else switched it off: not recorded as stockbridge's. Otherwise it stays
            // recorded.
            Ok(found) if just_recorded && found.found_off_by_someone_else(SOLD_OUT_MESSAGE) => {
                not_ours.push(link.clone());
            }
            Ok(LinkSwitch::Unchanged { .. }) => {}
            Err(e) => {
                warn!(payment_link = %link, error = %e, "switching a sold-out link off failed");
                first.get_or_insert(e);
            }
        }
    }
    if let Some(forget) = forget_links_off(&item, &not_ours) {
        info!(product_id = %d.product_id, links = ?not_ours, "payment links were already off at the sell-out: someone else's, left off and not recorded as stockbridge's");
        let write = WriteSet {
            items: vec![forget],
            ..WriteSet::default()
        };
        // Changed since (another decision wrote the item): the record stays as that decision
        // left it; this run's switch-offs stand either way.
        match store.commit(&write).await {
            Ok(()) | Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
    }
    first.map_or(Ok(()), |e| Err(e.into()))
}

async fn refund<S: InventoryStore, Y: Payments>(
    store: &S,
    payments: &Y,
    events: &dyn DynMerchantEvents,
    req: &stockbridge_domain::RefundRequest,
    now: Timestamp,
) -> Result<(), EffectError> {
    let order_id = &req.order_id;
    let (refund_id, ours) = match payments.refund(req).await {
        Ok(id) => (id, true),
        Err(PaymentsError::AlreadyRefunded) => {
            warn!(order_id = %order_id, payment_intent = %req.payment_intent, "payment was already refunded outside stockbridge");
            // A valid id by construction.
            let id = RefundId::parse(REFUNDED_OUTSIDE).map_err(|e| StoreError::Corrupt {
                key: order_id.to_string(),
                reason: e.to_string(),
            })?;
            (id, false)
        }
        Err(e) => return Err(e.into()),
    };
    // Whoever refunded it first tells the buyer: an event only for stockbridge's own refund,
    // published before the refund is recorded: a crash in between refunds again (the same
    // refund: its idempotency key) and publishes again. At least once; the order id is the
    // consumer's key to drop a repeat.
    if ours {
        info!(order_id = %order_id, payment_intent = %req.payment_intent, refund_id = %refund_id, "oversold order refunded");
        announce(store, events, order_id, &refund_id).await?;
    }
    store.record_refund(order_id, &refund_id, now).await?;
    Ok(())
}

/// Publishes `stockbridge.order_refunded` for the order's refund.
async fn announce<S: InventoryStore>(
    store: &S,
    events: &dyn DynMerchantEvents,
    order_id: &stockbridge_domain::OrderId,
    refund_id: &RefundId,
) -> Result<(), EffectError> {
    let Some(notice) = store
        .load_order(order_id)
        .await?
        .and_then(|o| o.refund_notice(refund_id))
    else {
        return Ok(());
    };
    let detail = serde_json::to_value(&notice).map_err(|e| StoreError::Corrupt {
        key: order_id.to_string(),
        reason: e.to_string(),
    })?;
    events
        .publish_boxed(ORDER_REFUNDED, &detail)
        .await
        .map_err(EffectError::Event)
}

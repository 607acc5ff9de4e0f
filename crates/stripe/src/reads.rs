//! What the reconciler reads from Stripe: whether a link is on (and its limit), the event log, recent
//! sessions and their refunds.

use super::*;

impl LinkDirectory for StripePayments {
    async fn link_state(
        &self,
        link: &PaymentLinkId,
    ) -> Result<Option<stockbridge_domain::link_guard::LinkSeen>, PaymentsError> {
        let retrieve = RetrievePaymentLink::new(link.as_str());
        match self
            .with_retry("read payment link", || retrieve.send(&self.client))
            .await
        {
            Ok(pl) => Ok(Some(crate::link_guard::link_seen(&pl))),
            Err(PaymentsError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn link_summary(&self, link: &PaymentLinkId) -> Result<LinkSummary, PaymentsError> {
        const OP: &str = "read payment link";
        let retrieve = RetrievePaymentLink::new(link.as_str());
        let pl = self.with_retry(OP, || retrieve.send(&self.client)).await?;
        let lines = ListLineItemsPaymentLink::new(link.as_str())
            .limit(1)
            .expand(vec!["data.price.product".to_owned()]);
        let page = self.with_retry(OP, || lines.send(&self.client)).await?;
        let price = page.data.first().and_then(|i| i.price.as_ref());
        let product = price.and_then(|p| match &p.product {
            Expandable::Object(p) => Some(p.as_ref()),
            Expandable::Id(_) => None,
        });
        Ok(LinkSummary {
            url: pl.url,
            active: pl.active,
            unit_amount: price.and_then(|p| p.unit_amount),
            currency: price.map(|p| p.currency.to_string()),
            product_name: product.map(|p| p.name.clone()),
            description: product.and_then(|p| p.description.clone()),
            images: product.map(|p| p.images.clone()).unwrap_or_default(),
        })
    }
}

/// Renders a listed event as the JSON the inventory handler decodes (the fields it reads, and
/// `data.object` whole).
pub(crate) fn logged(e: stripe_shared::Event) -> Result<LoggedEvent, PaymentsError> {
    const OP: &str = "list events";
    let invalid = |message: String| PaymentsError::Invalid {
        operation: OP,
        message,
    };
    let object: serde_json::Value =
        serde_json::from_str(&miniserde::json::to_string(&e.data.object))
            .map_err(|err| invalid(format!("event {}: data.object: {err}", e.id.as_str())))?;
    let id = StripeEventId::parse(e.id.as_str()).map_err(|err| invalid(err.to_string()))?;
    let event = serde_json::json!({
        "id": e.id.as_str(),
        "object": "event",
        "type": e.type_.as_str(),
        "livemode": e.livemode,
        "created": e.created,
        "api_version": e.api_version,
        "data": { "object": object },
    });
    Ok(LoggedEvent {
        id,
        created: e.created,
        event,
    })
}

impl EventLog for StripePayments {
    async fn events_between(
        &self,
        types: &[&str],
        from: i64,
        to: i64,
    ) -> Result<Vec<LoggedEvent>, PaymentsError> {
        const OP: &str = "list events";
        let range = stripe_types::RangeQueryTs::Bounds(stripe_types::RangeBoundsTs {
            gte: Some(from),
            lte: Some(to),
            ..Default::default()
        });
        // Stripe lists newest first; every page is read, then the whole turned oldest first.
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut req = ListEvent::new()
                .types(types.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>())
                .created(range)
                .limit(100);
            if let Some(a) = &after {
                req = req.starting_after(a.clone());
            }
            let page = self.with_retry(OP, || req.send(&self.client)).await?;
            after = page.data.last().map(|e| e.id.as_str().to_owned());
            for e in page.data {
                out.push(logged(e)?);
            }
            if !page.has_more || after.is_none() {
                break;
            }
        }
        out.reverse();
        // Newest-first pages reversed are oldest first; a stable sort by time makes it so even
        // where Stripe's order within a listing is not strictly by `created`.
        out.sort_by_key(|e| e.created);
        Ok(out)
    }
}

impl SessionLog for StripePayments {
    async fn session_payment(&self, session: &OrderId) -> Result<SessionPayment, PaymentsError> {
        const OP: &str = "read checkout session";
        let req = RetrieveCheckoutSession::new(session.as_str())
            .expand(vec!["payment_intent".to_owned()]);
        let s = self.with_retry(OP, || req.send(&self.client)).await?;
        use stripe_shared::CheckoutSessionPaymentStatus as P;
        if matches!(s.payment_status, P::Paid | P::NoPaymentRequired) {
            return Ok(SessionPayment::Paid);
        }
        use stripe_shared::PaymentIntentStatus as I;
        Ok(match s.payment_intent.as_ref() {
            Some(Expandable::Object(pi)) => match pi.status {
                I::Succeeded => SessionPayment::Paid,
                I::RequiresPaymentMethod | I::Canceled => SessionPayment::Failed,
                _ => SessionPayment::Pending,
            },
            _ => SessionPayment::Pending,
        })
    }

    async fn completed_sessions_since(
        &self,
        since: i64,
    ) -> Result<Vec<SessionSummary>, PaymentsError> {
        const OP: &str = "list checkout sessions";
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut req = ListCheckoutSession::new()
                .status(stripe_shared::CheckoutSessionStatus::Complete)
                .created(stripe_types::RangeQueryTs::gte(since))
                .limit(100);
            if let Some(a) = &after {
                req = req.starting_after(a.clone());
            }
            let page = self.with_retry(OP, || req.send(&self.client)).await?;
            for s in &page.data {
                let id = OrderId::parse(s.id.as_str()).map_err(|e| PaymentsError::Invalid {
                    operation: OP,
                    message: e.to_string(),
                })?;
                out.push(SessionSummary {
                    id,
                    created: s.created,
                    object: crate::objects::session_json(s),
                });
            }
            match (page.has_more, page.data.last()) {
                (true, Some(last)) => after = Some(last.id.as_str().to_owned()),
                _ => return Ok(out),
            }
        }
    }
}

//! A Payment Link's completed-sessions limit, as the link guard sets and reads it
//! ([`stockbridge_domain::link_guard`], docs/link-guard.md).
//!
//! async-stripe's typed `UpdatePaymentLink` sets `restrictions[completed_sessions][limit]`
//! (it cannot remove one: stockbridge never needs to). The limit stockbridge set is named in the
//! link's metadata (`stockbridge_limit`), so a limit a merchant set is told apart and left alone.

use std::collections::HashMap;

use stockbridge_app::ports::{GuardOutcome, PaymentsError};
use stockbridge_domain::PaymentLinkId;
use stockbridge_domain::link_guard::{GUARD_METADATA_KEY, LinkLimit, LinkSeen};
use stripe_payment::payment_link::{CompletedSessionsParams, RestrictionsParams};
use stripe_payment::payment_link::{RetrievePaymentLink, UpdatePaymentLink};

use crate::StripePayments;

/// A limit high enough never to be reached, set once on a link that has none so Stripe tells
/// the count it keeps (`restrictions.completed_sessions.count` exists only with a limit, and
/// whether it counts sessions from before the limit is not documented).
const PROBE_LIMIT: u64 = 1_000_000;

/// The link's limit, told apart by the mark stockbridge leaves in its metadata.
pub(crate) fn link_limit(pl: &stripe_shared::PaymentLink) -> LinkLimit {
    LinkLimit::from_stripe(
        pl.restrictions
            .as_ref()
            .map(|r| (r.completed_sessions.count, r.completed_sessions.limit)),
        pl.metadata.get(GUARD_METADATA_KEY).map(String::as_str),
    )
}

/// How a link is seen by the reconciler.
pub(crate) fn link_seen(pl: &stripe_shared::PaymentLink) -> LinkSeen {
    LinkSeen {
        active: pl.active,
        limit: link_limit(pl),
    }
}

impl StripePayments {
    /// [`stockbridge_app::ports::Payments::guard_link`].
    pub(crate) async fn set_guard(
        &self,
        link: &PaymentLinkId,
        sessions: u64,
        activate: bool,
    ) -> Result<GuardOutcome, PaymentsError> {
        const OP: &str = "update payment link limit";
        let retrieve = RetrievePaymentLink::new(link.as_str());
        let mut current = self
            .with_retry("read payment link", || retrieve.send(&self.client))
            .await?;
        // Off at stockbridge's own limit: Stripe's switch for stockbridge. Raising the limit
        // (there is stock: `sessions` >= 1) switches it back on too, or it would stay off below
        // its new limit and look like a person's switch-off from then on.
        let activate = activate || (!current.active && link_limit(&current).reached_ours());
        let count = match link_limit(&current) {
            LinkLimit::Theirs => return Ok(GuardOutcome::Theirs),
            LinkLimit::Ours(g) => g.count,
            LinkLimit::None => {
                // No limit yet, so no count: set one far out first, then read Stripe's count.
                let probe = limit_request(link, PROBE_LIMIT);
                current = self.with_retry(OP, || probe.send(&self.client)).await?;
                match link_limit(&current) {
                    LinkLimit::Ours(g) => g.count,
                    _ => {
                        return Err(PaymentsError::Invalid {
                            operation: OP,
                            message: "the link's answer has no completed-sessions limit".into(),
                        });
                    }
                }
            }
        };
        let limit = count.saturating_add(sessions.max(1));
        let same = matches!(link_limit(&current), LinkLimit::Ours(g) if g.limit == limit);
        if same && (!activate || current.active) {
            return Ok(GuardOutcome::Unchanged);
        }
        let mut req = limit_request(link, limit);
        let switched_on = activate && !current.active;
        if switched_on {
            // As a switch-on: the message shown while off goes too.
            req = req.active(true).inactive_message("");
        }
        self.with_retry(OP, || req.send(&self.client)).await?;
        Ok(GuardOutcome::Set { limit, switched_on })
    }
}

fn limit_request(link: &PaymentLinkId, limit: u64) -> UpdatePaymentLink {
    // Within i64 by construction (a count plus units of stock).
    let limit_i64 = i64::try_from(limit).unwrap_or(i64::MAX);
    UpdatePaymentLink::new(link.as_str())
        .restrictions(RestrictionsParams::new(CompletedSessionsParams::new(
            limit_i64,
        )))
        .metadata(HashMap::from([(
            GUARD_METADATA_KEY.to_owned(),
            limit.to_string(),
        )]))
}

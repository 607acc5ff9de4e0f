//! The Stripe-side guard on a Payment Link: its `restrictions.completed_sessions.limit`, kept in
//! step with stock, so Stripe itself stops selling when the units are gone even if stockbridge's
//! switch-off is late (docs/link-guard.md).
//!
//! Stripe counts completed sessions, not units, so a limit stands for units only where a
//! session buys a known number of them: the links the catalog sync made sell one product at a
//! fixed quantity (their [`crate::LinkTerms`]); a link with an adjustable quantity, several
//! products or unknown terms is never limited. For a guarded link the limit is the sessions
//! completed so far plus the sessions the units not held can still fill:
//! `count + available / quantity`. The link's own sales move both terms together (the count up,
//! the stock down), so they need no Stripe call to keep the limit right; what moves stock
//! another way (a restock, a hold, a sale through another channel) leaves it wrong until it is
//! set again — at `stock set`/`catalog import`, at the restock switch-on and by the reconciler.
//! A limit too high guards less (the oversold refund is still the last net); one too low
//! switches the link off early, and the reconciler switches it back on.
//!
//! Whose switch is it? Stripe switches a link off by itself at its limit. stockbridge switches
//! on only what it switched off (`CatalogItem::deactivated_links`), so a link Stripe switched
//! off at a limit stockbridge set counts as stockbridge's: [`LinkGuard::reached`]. stockbridge
//! marks the limits it sets (the link's metadata names the limit), so a limit a merchant set
//! in the Dashboard is theirs: never changed, and its switch-off is theirs too.

/// The metadata key naming the limit stockbridge set on a link.
pub const GUARD_METADATA_KEY: &str = "stockbridge_limit";

/// A link's completed-sessions restriction, as Stripe has it, when stockbridge set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkGuard {
    /// Sessions completed through the link that count towards the limit.
    pub count: u64,
    /// The limit stockbridge set.
    pub limit: u64,
}

impl LinkGuard {
    /// True when the link has reached the limit stockbridge set: a link found off then was
    /// switched off by Stripe at stockbridge's limit, not by a person.
    pub fn reached(&self) -> bool {
        self.count >= self.limit
    }
}

/// The completed-sessions limit a link has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkLimit {
    /// None.
    None,
    /// One stockbridge set (the link's metadata names it).
    Ours(LinkGuard),
    /// One someone else set: never changed by stockbridge.
    Theirs,
}

impl LinkLimit {
    /// Reads a link's `restrictions.completed_sessions` (`None`: no restriction) and the limit
    /// its metadata says stockbridge set.
    pub fn from_stripe(completed: Option<(u64, i64)>, marked: Option<&str>) -> Self {
        match completed {
            // stockbridge's mark, no restriction: someone removed stockbridge's limit in the
            // Dashboard, the merchant's way to take the link out of the guard.
            None if marked.is_some() => Self::Theirs,
            None => Self::None,
            Some((count, limit)) => match u64::try_from(limit) {
                Ok(limit) if marked == Some(limit.to_string().as_str()) => {
                    Self::Ours(LinkGuard { count, limit })
                }
                _ => Self::Theirs,
            },
        }
    }

    /// Stripe switched the link off at a limit stockbridge set (when it is off).
    pub fn reached_ours(&self) -> bool {
        matches!(self, Self::Ours(g) if g.reached())
    }
}

/// A link as the reconciler reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkSeen {
    /// Whether it accepts payments.
    pub active: bool,
    /// Its limit.
    pub limit: LinkLimit,
}

impl LinkSeen {
    /// A link with no limit.
    pub fn plain(active: bool) -> Self {
        Self {
            active,
            limit: LinkLimit::None,
        }
    }

    /// Off because Stripe reached the limit stockbridge set: stockbridge's switch.
    pub fn off_at_our_limit(&self) -> bool {
        !self.active && self.limit.reached_ours()
    }
}

/// The limit a link selling `quantity` units per session should have, `count` sessions in,
/// with `available` units not held. `None` when no session can be filled (`available <
/// quantity`): the sold-out switch-off owns the link then (Stripe wants a limit of at least 1,
/// and a limit at the count would say nothing the switch does not).
pub fn wanted_limit(count: u64, available: u64, quantity: u64) -> Option<u64> {
    let sessions = available.checked_div(quantity)?;
    (sessions > 0).then(|| count.saturating_add(sessions))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_the_count_plus_the_sessions_the_free_units_fill() {
        assert_eq!(wanted_limit(0, 5, 1), Some(5));
        assert_eq!(wanted_limit(7, 5, 1), Some(12));
        // Two units a session: the odd unit fills no session.
        assert_eq!(wanted_limit(3, 5, 2), Some(5));
        // Nothing to sell, or a session bigger than what is left: no limit (the switch-off).
        assert_eq!(wanted_limit(3, 0, 1), None);
        assert_eq!(wanted_limit(3, 1, 2), None);
        assert_eq!(wanted_limit(3, 1, 0), None);
    }

    #[test]
    fn the_links_own_sales_keep_the_limit_right_without_a_call() {
        // Five units, the link sells them one by one: count and stock move together.
        let first = wanted_limit(0, 5, 1);
        for sold in 1..5 {
            assert_eq!(wanted_limit(sold, 5 - sold, 1), first);
        }
        // At the fifth sale Stripe switches it off by itself, and that is stockbridge's switch.
        assert!(LinkGuard { count: 5, limit: 5 }.reached());
        assert!(!LinkGuard { count: 4, limit: 5 }.reached());
        // A session opened before the switch may still complete past the limit.
        assert!(LinkGuard { count: 6, limit: 5 }.reached());
    }

    #[test]
    fn only_a_limit_the_metadata_names_is_stockbridges() {
        let ours = LinkLimit::from_stripe(Some((5, 5)), Some("5"));
        assert_eq!(ours, LinkLimit::Ours(LinkGuard { count: 5, limit: 5 }));
        assert!(ours.reached_ours());
        // A merchant changed the limit in the Dashboard, or set one with no mark: theirs.
        assert_eq!(
            LinkLimit::from_stripe(Some((5, 7)), Some("5")),
            LinkLimit::Theirs
        );
        assert_eq!(
            LinkLimit::from_stripe(Some((5, 5)), None),
            LinkLimit::Theirs
        );
        assert!(!LinkLimit::Theirs.reached_ours());
        assert_eq!(LinkLimit::from_stripe(None, None), LinkLimit::None);
        // The mark left, the limit removed: the merchant took the link out of the guard.
        assert_eq!(LinkLimit::from_stripe(None, Some("5")), LinkLimit::Theirs);
        // Off at our limit is ours; off below it is someone's hand.
        let seen = |active, count| LinkSeen {
            active,
            limit: LinkLimit::Ours(LinkGuard { count, limit: 5 }),
        };
        assert!(seen(false, 5).off_at_our_limit());
        assert!(!seen(false, 4).off_at_our_limit());
        assert!(!seen(true, 5).off_at_our_limit());
    }
}

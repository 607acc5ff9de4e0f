//! Invariant checks the reconciler runs, as pure functions: state in, discrepancies and repairs
//! out.

use crate::link_guard::LinkSeen;
use crate::{CatalogItem, LedgerEntry, OrderId, OrderRecord, PaymentIntentId, PaymentLinkId};

/// What was found wrong, what it should be, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Discrepancy {
    /// Which invariant (`link_active_iff_in_stock`).
    pub what: &'static str,
    /// The object concerned (`store/product/link`).
    pub subject: String,
    /// The expected state.
    pub expected: String,
    /// The state found.
    pub found: String,
    /// The repair.
    pub action: Repair,
    /// The likely cause, when known.
    pub cause: Option<&'static str>,
}

/// A repair the reconciler makes (unless it is a dry run).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Repair {
    /// Switch a payment link on or off.
    SetLinkActive {
        /// The link.
        link: PaymentLinkId,
        /// The wanted state.
        active: bool,
    },
    /// Apply a paid Checkout Session that has no order, as its `completed` event would have.
    ApplySession {
        /// The session (the order's id).
        session: OrderId,
    },
    /// Make Stripe's Product, Price and Payment Links match the catalog again.
    SyncProduct {
        /// The product.
        product: crate::ProductId,
    },
    /// Nothing: reported for a person to look at (the repair could harm).
    LeaveAlone,
    /// Refund an oversold, paid order — in full, or the part that was stockbridge's (with the
    /// order's idempotency key).
    Refund {
        /// The order.
        order_id: OrderId,
        /// The PaymentIntent.
        payment_intent: PaymentIntentId,
        /// Minor units (`None`: in full).
        amount: Option<u64>,
    },
}

/// A spread product's item or one of its shards (`shard`) holds what its own ledger says: every
/// change of either writes an entry at the version it produces (a take's, when the take is
/// recorded), so the entry at the current version has the current level. An entry missing is a
/// take in flight or not recorded yet (its redelivery records it): not reported. Reported, never
/// repaired: which of the two is right takes a person (`stockbridge history`).
pub fn check_shard_ledger(
    item: &CatalogItem,
    shard: Option<u16>,
    (available, version): (u64, u64),
    entry: Option<&LedgerEntry>,
) -> Option<Discrepancy> {
    let entry = entry?;
    (entry.level != available).then(|| Discrepancy {
        what: "spread_stock_matches_its_ledger",
        subject: match shard {
            Some(i) => format!("{}/{}/shard {i}", item.store_id, item.product_id),
            None => format!("{}/{}", item.store_id, item.product_id),
        },
        expected: format!(
            "{} available (the ledger at version {version})",
            entry.level
        ),
        found: format!("{available} available"),
        action: Repair::LeaveAlone,
        cause: Some("a write to the item or shard that bypassed stockbridge"),
    })
}

/// Every oversold, paid order has a refund: one without a recorded refund (its refund failed
/// after every retry, or the process died before it) is refunded — with the order's own
/// idempotency key, so a refund that did happen is replayed, never repeated.
pub fn check_refund(order: &OrderRecord) -> Option<Discrepancy> {
    let request = order.refund_request()?;
    Some(Discrepancy {
        what: "oversold_order_refunded",
        subject: format!("{}/{}", order.store_id, order.order_id),
        expected: match request.amount {
            None => "refunded in full".to_owned(),
            Some(a) => format!("{a} (minor units) refunded: the lines not delivered"),
        },
        found: "oversold and paid, no refund recorded".to_owned(),
        action: Repair::Refund {
            order_id: request.order_id,
            payment_intent: request.payment_intent,
            amount: request.amount,
        },
        cause: Some("the refund failed after every retry, or the process stopped before it"),
    })
}

/// A product's payment links are active if and only if it has stock: a link found on at 0 is
/// switched off; a link found off while stock exists is switched back on only if stockbridge
/// switched it off (it is in the item's `deactivated_links`) — one switched off by someone else
/// is reported and left alone. A link Stripe switched off at the completed-sessions limit
/// stockbridge set ([`crate::link_guard`]) is stockbridge's too. `seen` is each link's state at
/// Stripe (links Stripe does not know are not reported here).
pub fn check_links(item: &CatalogItem, seen: &[(PaymentLinkId, LinkSeen)]) -> Vec<Discrepancy> {
    // A spread product's units are mostly in its shards: its level counts them.
    let want = item.level().available > 0;
    seen.iter()
        .filter(|(link, s)| s.active != want && item.payment_links.contains(link))
        .map(|(link, s)| {
            let is = s.active;
            let ours = item.deactivated_links.contains(link) || s.off_at_our_limit();
            let (action, cause) = match (want, ours) {
                (false, _) => (
                    Repair::SetLinkActive {
                        link: link.clone(),
                        active: false,
                    },
                    "switched on by someone else, or a sold-out switch that failed",
                ),
                (true, true) => (
                    Repair::SetLinkActive {
                        link: link.clone(),
                        active: true,
                    },
                    if item.deactivated_links.contains(link) {
                        "a reactivation that failed"
                    } else {
                        "switched off by Stripe at the limit stockbridge set, before a restock"
                    },
                ),
                (true, false) => (
                    Repair::LeaveAlone,
                    "switched off by someone else: stockbridge switches on only what it switched off",
                ),
            };
            Discrepancy {
                what: "link_active_iff_in_stock",
                subject: format!("{}/{}/{}", item.store_id, item.product_id, link),
                expected: format!("active={want} (stock {})", item.available),
                found: format!("active={is}"),
                action,
                cause: Some(cause),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProductId, StoreId, Timestamp};

    fn item(available: u64) -> CatalogItem {
        CatalogItem {
            store_id: StoreId::parse("s").unwrap(),
            product_id: ProductId::parse("p").unwrap(),
            name: "P".into(),
            available,
            held: 0,
            version: 3,
            payment_links: vec![
                PaymentLinkId::parse("plink_a").unwrap(),
                PaymentLinkId::parse("plink_b").unwrap(),
            ],
            deactivated_links: vec![],
            updated_at: Timestamp(0),
            managed_since: Timestamp(0),
            unrecorded_take: None,
            spread: None,
            low_stock: None,
        }
    }

    fn link(s: &str) -> PaymentLinkId {
        PaymentLinkId::parse(s).unwrap()
    }

    fn seen(s: &str, active: bool) -> (PaymentLinkId, LinkSeen) {
        (link(s), LinkSeen::plain(active))
    }

    #[test]
    fn a_link_stripe_switched_off_at_stockbridges_limit_is_stockbridges() {
        use crate::link_guard::{LinkGuard, LinkLimit};
        let at = |count| LinkSeen {
            active: false,
            limit: LinkLimit::Ours(LinkGuard { count, limit: 5 }),
        };
        // Restocked: Stripe's switch at stockbridge's limit is undone like stockbridge's own.
        let d = check_links(&item(4), &[(link("plink_a"), at(5))]);
        assert_eq!(
            d[0].action,
            Repair::SetLinkActive {
                link: link("plink_a"),
                active: true
            }
        );
        assert!(d[0].cause.unwrap().contains("Stripe"));
        // Off below the limit, or at a limit someone else set: a person's switch.
        let d = check_links(&item(4), &[(link("plink_a"), at(4))]);
        assert_eq!(d[0].action, Repair::LeaveAlone);
        let theirs = LinkSeen {
            active: false,
            limit: LinkLimit::Theirs,
        };
        let d = check_links(&item(4), &[(link("plink_a"), theirs)]);
        assert_eq!(d[0].action, Repair::LeaveAlone);
    }

    #[test]
    fn a_link_left_active_at_zero_is_switched_off() {
        let d = check_links(&item(0), &[seen("plink_a", true), seen("plink_b", false)]);
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0].action,
            Repair::SetLinkActive {
                link: link("plink_a"),
                active: false
            }
        );
        assert_eq!(d[0].found, "active=true");
    }

    #[test]
    fn a_link_someone_else_switched_off_is_reported_and_left_off() {
        let d = check_links(&item(4), &[seen("plink_b", false)]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].action, Repair::LeaveAlone);
    }

    #[test]
    fn a_link_stockbridge_switched_off_is_switched_on_while_stock_exists() {
        let mut it = item(4);
        it.deactivated_links = vec![link("plink_b")];
        let d = check_links(&it, &[seen("plink_a", true), seen("plink_b", false)]);
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0].action,
            Repair::SetLinkActive {
                link: link("plink_b"),
                active: true
            }
        );
    }

    #[test]
    fn only_a_paid_oversold_order_without_a_refund_needs_one() {
        let stock = std::collections::BTreeMap::from([(item(0).product_id.clone(), item(0))]);
        let facts = |payment| crate::CheckoutFacts {
            order_id: OrderId::parse("cs_1").unwrap(),
            store_id: StoreId::parse("s").unwrap(),
            lines: vec![crate::OrderLine {
                product_id: ProductId::parse("p").unwrap(),
                quantity: crate::Quantity::new(1).unwrap(),
            }],
            payment,
            payment_intent: Some(PaymentIntentId::parse("pi_1").unwrap()),
            payment_link: None,
            event_id: crate::StripeEventId::parse("evt_1").unwrap(),
            paid_at: crate::PaidAt::At(Timestamp(0)),
            amounts: std::collections::BTreeMap::new(),
        };
        let record =
            |payment| match crate::decide_checkout(None, &facts(payment), &stock, Timestamp(0))
                .write
                .order
            {
                Some(crate::OrderWrite::Create(r)) => r,
                other => panic!("{other:?}"),
            };
        let mut paid = record(crate::PaymentState::Paid);
        let d = check_refund(&paid).expect("a refund is due");
        assert_eq!(
            d.action,
            Repair::Refund {
                order_id: paid.order_id.clone(),
                payment_intent: PaymentIntentId::parse("pi_1").unwrap(),
                amount: None,
            }
        );
        paid.refund_id = Some(crate::RefundId::parse("re_1").unwrap());
        assert_eq!(check_refund(&paid), None, "already refunded");
        assert_eq!(
            check_refund(&record(crate::PaymentState::Awaiting)),
            None,
            "no money yet"
        );
    }

    #[test]
    fn links_in_agreement_or_unknown_to_the_catalog_are_left_alone() {
        assert!(check_links(&item(4), &[seen("plink_a", true), seen("plink_b", true)]).is_empty());
        assert!(check_links(&item(0), &[seen("plink_other", true)]).is_empty());
    }
}

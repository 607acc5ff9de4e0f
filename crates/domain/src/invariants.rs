//! Invariant checks the reconciler runs, as pure functions: state in, discrepancies and repairs
//! out.

use crate::{CatalogItem, PaymentLinkId};

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
}

/// A product's payment links are active if and only if it has stock: a link found off while
/// stock exists is switched on, a link found on at 0 is switched off. `active` is each link's
/// state at Stripe (links Stripe does not know are not reported here).
pub fn check_links(item: &CatalogItem, active: &[(PaymentLinkId, bool)]) -> Vec<Discrepancy> {
    let want = item.available > 0;
    active
        .iter()
        .filter(|(link, is)| *is != want && item.payment_links.contains(link))
        .map(|(link, is)| Discrepancy {
            what: "link_active_iff_in_stock",
            subject: format!("{}/{}/{}", item.store_id, item.product_id, link),
            expected: format!("active={want} (stock {})", item.available),
            found: format!("active={is}"),
            action: Repair::SetLinkActive {
                link: link.clone(),
                active: want,
            },
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
            version: 3,
            payment_links: vec![
                PaymentLinkId::parse("plink_a").unwrap(),
                PaymentLinkId::parse("plink_b").unwrap(),
            ],
            deactivated_links: vec![],
            updated_at: Timestamp(0),
        }
    }

    fn link(s: &str) -> PaymentLinkId {
        PaymentLinkId::parse(s).unwrap()
    }

    #[test]
    fn a_link_left_active_at_zero_is_switched_off() {
        let d = check_links(
            &item(0),
            &[(link("plink_a"), true), (link("plink_b"), false)],
        );
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
    fn a_link_off_while_stock_exists_is_switched_on() {
        let d = check_links(
            &item(4),
            &[(link("plink_a"), true), (link("plink_b"), false)],
        );
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
    fn links_in_agreement_or_unknown_to_the_catalog_are_left_alone() {
        assert!(
            check_links(
                &item(4),
                &[(link("plink_a"), true), (link("plink_b"), true)]
            )
            .is_empty()
        );
        assert!(check_links(&item(0), &[(link("plink_other"), true)]).is_empty());
    }
}

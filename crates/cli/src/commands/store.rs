//! `stockbridge store returns`: whether a store's refunded and lost-dispute orders return their
//! units to stock (both off by default; docs/refunds.md). Kept in the table; the inventory
//! reads it for each refund or closed dispute.

use anyhow::Result;
use clap::ValueEnum;
use stockbridge_app::ports::StoreSettings;
use stockbridge_bootstrap::Config;
use stockbridge_domain::after_sale::ReturnsPolicy;

use super::store_id;

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// Return the units.
    On,
    /// Leave the stock as it is (the default).
    Off,
}

/// One line saying what the policy does.
pub fn describe(store: &str, p: &ReturnsPolicy) -> String {
    let refunds = if p.refunds {
        "returns the order's units to stock"
    } else {
        "leaves the stock as it is"
    };
    let disputes = if p.lost_disputes {
        "returns them"
    } else {
        "leaves it"
    };
    let default = if p.refunds || p.lost_disputes {
        ""
    } else {
        " (the default)"
    };
    format!("store {store}: a refund in full {refunds}; a lost dispute {disputes}{default}")
}

/// Shows, or changes then shows, a store's returns policy.
pub async fn returns(
    config: &Config,
    store: Option<String>,
    (refunds, lost_disputes): (Option<OnOff>, Option<OnOff>),
    json: bool,
) -> Result<()> {
    let store = store_id(config, store)?;
    let table = stockbridge_bootstrap::store(config).await;
    let mut policy = table.returns_policy(&store).await?;
    if refunds.is_some() || lost_disputes.is_some() {
        let on = |v: Option<OnOff>, was: bool| v.map_or(was, |v| v == OnOff::On);
        policy = ReturnsPolicy {
            refunds: on(refunds, policy.refunds),
            lost_disputes: on(lost_disputes, policy.lost_disputes),
        };
        table.set_returns_policy(&store, policy).await?;
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"store_id": store.as_str(), "returns": policy})
        );
    } else {
        println!("{}", describe(store.as_str(), &policy));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_reads_as_a_sentence() {
        assert_eq!(
            describe("s1", &ReturnsPolicy::default()),
            "store s1: a refund in full leaves the stock as it is; a lost dispute leaves it (the default)"
        );
        let refunds = ReturnsPolicy {
            refunds: true,
            lost_disputes: false,
        };
        assert_eq!(
            describe("s1", &refunds),
            "store s1: a refund in full returns the order's units to stock; a lost dispute leaves it"
        );
    }
}

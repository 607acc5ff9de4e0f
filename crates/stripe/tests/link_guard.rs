//! The link guard's Stripe calls (setting and reading a Payment Link's completed-sessions
//! limit) against the local fake Stripe, which models the limit (docs/link-guard.md).

use serde_json::{Value, json};
use stockbridge_app::ports::{GuardOutcome, LinkDirectory, LinkSwitch, Payments};
use stockbridge_domain::PaymentLinkId;
use stockbridge_domain::link_guard::{LinkGuard, LinkLimit};

mod support;
use support::*;

fn state(l: &PaymentLinkId) -> Value {
    let out = std::process::Command::new("curl")
        .args(["-sf", &format!("{}/_test/state", base())])
        .output()
        .unwrap();
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["payment_links"][l.as_str()].clone()
}

/// A buyer pays through the link's hosted page; whether the page took the payment.
fn pay(l: &PaymentLinkId) -> bool {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            &format!("{}/pay/{l}", base()),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout) == "200"
}

fn posts(l: &PaymentLinkId) -> usize {
    requests(&format!("/v1/payment_links/{l}"))
        .iter()
        .filter(|r| r["method"] == json!("POST"))
        .count()
}

/// The sell-out's switch-off of a link.
async fn switch_off(c: &stockbridge_stripe::StripePayments, lid: &PaymentLinkId) -> LinkSwitch {
    c.set_link_active(lid, false, Some("Sold out"))
        .await
        .unwrap()
}

/// Found off with no message of stockbridge's; at stockbridge's limit or not.
fn found_off(at_guard_limit: bool) -> LinkSwitch {
    LinkSwitch::Unchanged {
        inactive_message: None,
        at_guard_limit,
    }
}

fn new_link(name: &str) -> PaymentLinkId {
    let product = control(
        "/_test/products",
        json!({"name": name, "unit_amount": 500, "currency": "usd"}),
    );
    let pid = product["product"]["id"].as_str().unwrap().to_owned();
    let link = control("/_test/payment_links", json!({"product": pid}));
    PaymentLinkId::parse(link["id"].as_str().unwrap()).unwrap()
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_guarded_link_stops_at_its_limit_and_is_switched_on_with_a_new_one() {
    let lid = new_link("Guarded badge");
    let c = client();
    // No limit yet: one far out first (for Stripe's count), then the count plus 2 sessions.
    assert_eq!(
        c.guard_link(&lid, 2, false).await.unwrap(),
        GuardOutcome::Set {
            limit: 2,
            switched_on: false
        }
    );
    assert_eq!(
        state(&lid)["restrictions"],
        json!({"completed_sessions": {"count": 0, "limit": 2}})
    );
    assert_eq!(state(&lid)["metadata"]["stockbridge_limit"], json!("2"));
    let sent = posts(&lid);
    assert_eq!(
        c.guard_link(&lid, 2, false).await.unwrap(),
        GuardOutcome::Unchanged
    );
    assert_eq!(
        posts(&lid),
        sent,
        "a limit already right is never sent again"
    );

    // Two buyers: Stripe switches the link off by itself at the limit.
    assert!(pay(&lid) && pay(&lid));
    assert!(!pay(&lid), "a third buyer finds the link off");
    let seen = c.link_state(&lid).await.unwrap().unwrap();
    assert_eq!(
        seen.limit,
        LinkLimit::Ours(LinkGuard { count: 2, limit: 2 })
    );
    assert!(seen.off_at_our_limit());
    // The sell-out's switch-off finds it off at stockbridge's limit: stockbridge's switch.
    assert_eq!(switch_off(&c, &lid).await, found_off(true));

    // A restock of 3: on again, with the limit at count + 3, in one request.
    let sent = posts(&lid);
    assert_eq!(
        c.guard_link(&lid, 3, true).await.unwrap(),
        GuardOutcome::Set {
            limit: 5,
            switched_on: true
        }
    );
    assert_eq!(posts(&lid), sent + 1);
    assert_eq!(state(&lid)["active"], json!(true));
    assert!(pay(&lid));
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_limit_someone_else_set_is_theirs_and_left_alone() {
    let lid = new_link("Merchant-limited tee");
    let c = client();
    c.guard_link(&lid, 4, false).await.unwrap();
    // The merchant changes the limit in the Dashboard: the mark no longer names it.
    control(
        &format!("/_test/dashboard/payment_links/{lid}"),
        json!({"restrictions": {"completed_sessions": {"limit": 1}}}),
    );
    let sent = posts(&lid);
    assert_eq!(
        c.guard_link(&lid, 9, true).await.unwrap(),
        GuardOutcome::Theirs
    );
    assert_eq!(posts(&lid), sent, "nothing sent");
    assert!(pay(&lid));
    let seen = c.link_state(&lid).await.unwrap().unwrap();
    assert!(!seen.active && seen.limit == LinkLimit::Theirs);
    assert!(
        !seen.off_at_our_limit(),
        "a merchant's limit is the merchant's switch"
    );
    assert_eq!(switch_off(&c, &lid).await, found_off(false));
}

#[tokio::test]
#[ignore = "needs the local stack: run scripts/test"]
async fn a_new_limit_on_a_link_off_at_stockbridges_limit_switches_it_back_on() {
    let lid = new_link("Early-stopped cap");
    let c = client();
    c.guard_link(&lid, 1, false).await.unwrap();
    assert!(pay(&lid));
    assert_eq!(state(&lid)["active"], json!(false), "off at its limit");
    // A stock change (not a restock's switch-on): the link is stockbridge's, so on again.
    assert_eq!(
        c.guard_link(&lid, 2, false).await.unwrap(),
        GuardOutcome::Set {
            limit: 3,
            switched_on: true
        }
    );
    assert_eq!(state(&lid)["active"], json!(true));
    // A person's switch-off below the limit is left off by a new limit.
    control(
        &format!("/_test/dashboard/payment_links/{lid}"),
        json!({"active": false}),
    );
    c.guard_link(&lid, 5, false).await.unwrap();
    assert_eq!(state(&lid)["active"], json!(false));
}

//! The back-in-stock waitlist through its use cases and the merchant's real restock
//! (`change_stock`), on in-memory ports: double opt-in, one announcement per restock serving
//! each confirmed address once, the signed links, the caps.

use serde_json::Value;
use stockbridge_app::memory::MemoryMerchantEvents;
use stockbridge_app::ports::{Waitlist, WaitlistEntry};
use stockbridge_app::waitlist::{
    BACK_IN_STOCK, CONFIRMATION_REQUESTED, JoinReply, JoinRequest, LinkReply, Signer, TokenError,
    WaitlistLimits, WaitlistLinks, announce_restock, confirm, entries, join, parse_join,
    unsubscribe,
};
use stockbridge_domain::{ProductId, StockChange, StoreId, Timestamp};

use crate::support::{STORE, World, world};

const NOW: Timestamp = Timestamp(1_800_000_000_000);

fn links() -> WaitlistLinks {
    WaitlistLinks {
        signer: Signer::new(&[42u8; 32]).unwrap(),
        base: "https://shop.example/".into(),
    }
}

fn ids() -> (StoreId, ProductId) {
    (
        StoreId::parse(STORE).unwrap(),
        ProductId::parse("tee").unwrap(),
    )
}

fn request(email: &str, client: &str) -> JoinRequest {
    let (store_id, product_id) = ids();
    JoinRequest {
        store_id,
        product_id,
        email: email.into(),
        client: Some(client.into()),
    }
}

/// The `token` of a link.
fn token(url: &str) -> String {
    url.split("token=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned()
}

async fn joined(w: &World, events: &MemoryMerchantEvents, email: &str) -> Value {
    let before = events.published().len();
    let r = join(
        &w.store,
        events,
        &links(),
        WaitlistLimits::default(),
        &request(email, "client:a"),
        NOW,
    )
    .await;
    assert_eq!(r.unwrap(), JoinReply::Requested);
    let published = events.published();
    assert_eq!(published.len(), before + 1, "one confirmation request");
    assert_eq!(published[before].0, CONFIRMATION_REQUESTED);
    published[before].1.clone()
}

/// Joins and confirms `email` (its confirm link followed).
async fn confirmed(w: &World, events: &MemoryMerchantEvents, email: &str) {
    let request = joined(w, events, email).await;
    let url = request["confirm_url"].as_str().unwrap();
    assert!(
        url.starts_with("https://shop.example/waitlist/confirm?token="),
        "{url}"
    );
    let done = confirm(&w.store, &links(), &token(url), NOW).await.unwrap();
    assert_eq!(done, LinkReply::Done("tee".into()));
}

async fn restock(w: &World, units: i64) -> u64 {
    let (s, p) = ids();
    w.app
        .change_stock(&s, &p, StockChange::Adjust(units), None, "cli")
        .await
        .unwrap();
    w.store.snapshot().items[&ids()].version
}

async fn sell_out(w: &World) {
    let (s, p) = ids();
    w.app
        .change_stock(&s, &p, StockChange::Set(0), None, "cli")
        .await
        .unwrap();
}

/// Announces `version`'s restock; the event, if one was published.
async fn announce(w: &World, events: &MemoryMerchantEvents, version: u64) -> Option<Value> {
    let (s, p) = ids();
    let before = events.published().len();
    announce_restock(&w.store, events, &links(), (&s, &p, version), NOW)
        .await
        .unwrap()?;
    let published = events.published();
    assert_eq!(published.len(), before + 1);
    assert_eq!(published[before].0, BACK_IN_STOCK);
    Some(published[before].1.clone())
}

async fn listed(w: &World, announced: &Value) -> Vec<String> {
    let url = announced["entries_url"].as_str().unwrap();
    let page = entries(&w.store, &links(), &token(url), None, NOW)
        .await
        .unwrap()
        .unwrap();
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["email"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_confirmed_address_hears_of_the_next_restock_once() {
    let w = world(&[("tee", 0, 0)]);
    let events = MemoryMerchantEvents::default();
    confirmed(&w, &events, "ana@example.com").await;
    // Joined but never confirmed: not counted.
    joined(&w, &events, "bob@example.com").await;
    let version = restock(&w, 5).await;
    let announced = announce(&w, &events, version).await.expect("announced");
    assert_eq!(announced["count"], 1);
    assert_eq!(announced["available"], 5);
    assert_eq!(announced["restock"], version);
    assert_eq!(listed(&w, &announced).await, vec!["ana@example.com"]);
    // Once: a second delivery of the same restock publishes nothing.
    assert!(announce(&w, &events, version).await.is_none());
    // A merchant's change that is not from 0 is no restock.
    let more = restock(&w, 3).await;
    assert!(announce(&w, &events, more).await.is_none());
    // Sold out and restocked again: ana was served, so the next restock serves no one...
    sell_out(&w).await;
    let again = restock(&w, 2).await;
    let second = announce(&w, &events, again).await.expect("announced");
    assert_eq!(second["count"], 0);
    assert!(listed(&w, &second).await.is_empty());
    // ...until she joins again (and confirms): then she is in line for the next one.
    confirmed(&w, &events, "ana@example.com").await;
    sell_out(&w).await;
    let third = restock(&w, 1).await;
    let announced = announce(&w, &events, third).await.expect("announced");
    assert_eq!(listed(&w, &announced).await, vec!["ana@example.com"]);
}

#[tokio::test]
async fn joining_again_while_waiting_asks_nothing_and_answers_the_same() {
    let w = world(&[("tee", 0, 0)]);
    let events = MemoryMerchantEvents::default();
    confirmed(&w, &events, "ana@example.com").await;
    let n = events.published().len();
    let r = join(
        &w.store,
        &events,
        &links(),
        WaitlistLimits::default(),
        &request("ANA@example.com", "client:b"),
        NOW,
    )
    .await;
    assert_eq!(r.unwrap(), JoinReply::Requested);
    assert_eq!(events.published().len(), n, "no new confirmation request");
    let entry = w
        .store
        .waitlist
        .lock()
        .unwrap()
        .entries
        .values()
        .next()
        .unwrap()
        .0
        .clone();
    assert!(entry.confirmed.is_some(), "still confirmed");
}

#[tokio::test]
async fn a_failed_announcement_stays_pending_and_is_made_later() {
    let w = world(&[("tee", 0, 0)]);
    let events = MemoryMerchantEvents::default();
    confirmed(&w, &events, "ana@example.com").await;
    let version = restock(&w, 5).await;
    events.fail_next(1);
    let (s, p) = ids();
    assert!(
        announce_restock(&w.store, &events, &links(), (&s, &p, version), NOW)
            .await
            .is_err()
    );
    assert!(
        w.store
            .pending_restock(&s, &p, version)
            .await
            .unwrap()
            .is_some()
    );
    let announced = announce(&w, &events, version)
        .await
        .expect("announced on retry");
    assert_eq!(announced["count"], 1);
    assert!(
        w.store
            .pending_restock(&s, &p, version)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_restock_older_than_one_announced_serves_no_one() {
    let w = world(&[("tee", 0, 0)]);
    let events = MemoryMerchantEvents::default();
    confirmed(&w, &events, "ana@example.com").await;
    let first = restock(&w, 5).await;
    sell_out(&w).await;
    let second = restock(&w, 5).await;
    // Delivered out of order: the later one takes the entries, the earlier is dropped.
    assert_eq!(announce(&w, &events, second).await.unwrap()["count"], 1);
    assert!(announce(&w, &events, first).await.is_none());
    let (s, p) = ids();
    assert!(
        w.store
            .pending_restock(&s, &p, first)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn links_do_only_what_they_say() {
    let w = world(&[("tee", 0, 0)]);
    let events = MemoryMerchantEvents::default();
    let request = joined(&w, &events, "ana@example.com").await;
    let (confirm_t, leave_t) = (
        token(request["confirm_url"].as_str().unwrap()),
        token(request["unsubscribe_url"].as_str().unwrap()),
    );
    // Each link only for its own step.
    assert_eq!(
        confirm(&w.store, &links(), &leave_t, NOW).await.unwrap(),
        LinkReply::Refused(TokenError::Invalid)
    );
    assert_eq!(
        unsubscribe(&w.store, &links(), &confirm_t, NOW)
            .await
            .unwrap(),
        LinkReply::Refused(TokenError::Invalid)
    );
    // A confirm link expires with the unconfirmed entry (48 h).
    let late = Timestamp(NOW.0 + 48 * 3600 * 1000);
    assert_eq!(
        confirm(&w.store, &links(), &confirm_t, late).await.unwrap(),
        LinkReply::Refused(TokenError::Expired)
    );
    // Leaving removes the entry: its confirm link then finds nothing.
    assert_eq!(
        unsubscribe(&w.store, &links(), &leave_t, NOW)
            .await
            .unwrap(),
        LinkReply::Done("tee".into())
    );
    assert!(w.store.waitlist.lock().unwrap().entries.is_empty());
    assert_eq!(
        confirm(&w.store, &links(), &confirm_t, NOW).await.unwrap(),
        LinkReply::Gone
    );
    // Another secret's links are refused.
    let other = WaitlistLinks {
        signer: Signer::new(&[1u8; 32]).unwrap(),
        base: "x".into(),
    };
    assert_eq!(
        unsubscribe(&w.store, &other, &leave_t, NOW).await.unwrap(),
        LinkReply::Refused(TokenError::Invalid)
    );
}

#[tokio::test]
async fn erasure_removes_an_address_from_every_list() {
    let w = world(&[("tee", 0, 0), ("mug", 0, 0)]);
    let events = MemoryMerchantEvents::default();
    confirmed(&w, &events, "ana@example.com").await;
    let mut mug = request("Ana@Example.com", "client:a");
    mug.product_id = ProductId::parse("mug").unwrap();
    join(
        &w.store,
        &events,
        &links(),
        WaitlistLimits::default(),
        &mug,
        NOW,
    )
    .await
    .unwrap();
    joined(&w, &events, "bob@example.com").await;
    let key = WaitlistEntry {
        store_id: ids().0,
        product_id: ids().1,
        email: "ana@example.com".into(),
        confirmed: None,
        joined: NOW,
    }
    .email_key();
    assert_eq!(w.store.erase_address(&key).await.unwrap(), 2);
    let left: Vec<String> = w
        .store
        .waitlist
        .lock()
        .unwrap()
        .entries
        .values()
        .map(|(e, _)| e.email.clone())
        .collect();
    assert_eq!(left, vec!["bob@example.com"]);
}

#[tokio::test]
async fn joins_are_capped_per_address_and_per_client_and_checked() {
    let w = world(&[("tee", 0, 0)]);
    let events = MemoryMerchantEvents::default();
    let limits = WaitlistLimits {
        per_client: 4,
        per_email: 2,
    };
    let ask = |email: &str, client: &str| request(email, client);
    for _ in 0..2 {
        let r = join(
            &w.store,
            &events,
            &links(),
            limits,
            &ask("ana@example.com", "client:a"),
            NOW,
        )
        .await;
        assert_eq!(r.unwrap(), JoinReply::Requested);
    }
    // A stranger's inbox is not flooded: the third request for the address in the hour.
    let r = join(
        &w.store,
        &events,
        &links(),
        limits,
        &ask("ana@example.com", "client:b"),
        NOW,
    )
    .await;
    assert!(matches!(r.unwrap(), JoinReply::Limited { retry_after, .. } if retry_after > 0));
    assert_eq!(events.published().len(), 2);
    // One network: four sign-ups an hour in this test.
    join(
        &w.store,
        &events,
        &links(),
        limits,
        &ask("bob@example.com", "client:a"),
        NOW,
    )
    .await
    .unwrap();
    join(
        &w.store,
        &events,
        &links(),
        limits,
        &ask("cy@example.com", "client:a"),
        NOW,
    )
    .await
    .unwrap();
    let r = join(
        &w.store,
        &events,
        &links(),
        limits,
        &ask("di@example.com", "client:a"),
        NOW,
    )
    .await;
    assert!(matches!(r.unwrap(), JoinReply::Limited { .. }));
    // An unknown product is named.
    let mut unknown = ask("ed@example.com", "client:c");
    unknown.product_id = ProductId::parse("nope").unwrap();
    match join(&w.store, &events, &links(), limits, &unknown, NOW)
        .await
        .unwrap()
    {
        JoinReply::Invalid(e) => assert_eq!(e.field, "product_id"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_join_body_is_checked_field_by_field() {
    let ok =
        parse_join(br#"{"store_id":"s1","product_id":"tee","email":" ana@example.com "}"#).unwrap();
    assert_eq!(ok.email, "ana@example.com");
    for (body, field) in [
        (
            &br#"{"store_id":"s1","product_id":"tee","email":"ana"}"#[..],
            "email",
        ),
        (br#"{"store_id":"s1","product_id":"tee"}"#, "email"),
        (
            br#"{"store_id":"s#1","product_id":"tee","email":"a@b.co"}"#,
            "store_id",
        ),
        (
            br#"{"store_id":"s1","product_id":"","email":"a@b.co"}"#,
            "product_id",
        ),
        (
            br#"{"store_id":"s1","product_id":"tee","email":"a@b.co","x":1}"#,
            "body",
        ),
        (b"not json", "body"),
    ] {
        assert_eq!(
            parse_join(body).unwrap_err().field,
            field,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

/// The detail of the documented example `events/{file}`.
fn example(file: &str, detail_type: &str) -> Value {
    let path = format!("{}/../../events/{file}", env!("CARGO_MANIFEST_DIR"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(v["detail-type"], detail_type);
    v["detail"].clone()
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn the_published_details_have_exactly_the_fields_of_the_documented_examples() {
    let w = world(&[("tee", 0, 0)]);
    let events = MemoryMerchantEvents::default();
    let request = joined(&w, &events, "ana@example.com").await;
    let doc = example(
        "stockbridge.waitlist_confirmation_requested.json",
        CONFIRMATION_REQUESTED,
    );
    assert_eq!(keys(&request), keys(&doc));
    let version = restock(&w, 5).await;
    let announced = announce(&w, &events, version).await.unwrap();
    assert_eq!(
        keys(&announced),
        keys(&example("stockbridge.back_in_stock.json", BACK_IN_STOCK))
    );
}

#[tokio::test]
async fn pressing_confirm_again_keeps_the_place_in_line() {
    let w = world(&[("tee", 0, 0)]);
    let events = MemoryMerchantEvents::default();
    let request = joined(&w, &events, "ana@example.com").await;
    let link = token(request["confirm_url"].as_str().unwrap());
    assert_eq!(
        confirm(&w.store, &links(), &link, NOW).await.unwrap(),
        LinkReply::Done("tee".into())
    );
    // Restocked (recorded, not yet announced); the buyer presses the link again.
    let version = restock(&w, 5).await;
    assert_eq!(
        confirm(&w.store, &links(), &link, NOW).await.unwrap(),
        LinkReply::Done("tee".into())
    );
    let announced = announce(&w, &events, version).await.unwrap();
    assert_eq!(
        listed(&w, &announced).await,
        vec!["ana@example.com"],
        "still served by it"
    );
}

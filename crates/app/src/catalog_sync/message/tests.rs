use super::*;
use crate::decode::sync_message::tests::event;

fn entry() -> crate::ports::CatalogEntry {
    let details = stockbridge_domain::ProductDetails {
        product_id: ProductId::parse("tee").unwrap(),
        name: "Tee".into(),
        description: None,
        images: vec![],
        price: stockbridge_domain::Money::new(1500, "usd").unwrap(),
        active: true,
        metadata: Default::default(),
        stores: [StoreId::parse("s1").unwrap()].into_iter().collect(),
        revision: 2,
        updated_at: stockbridge_domain::Timestamp(0),
    };
    let mapping = stockbridge_domain::StripeMapping {
        price_id: Some(PriceId::parse("price_1").unwrap()),
        synced_revision: 2,
        ..Default::default()
    };
    crate::ports::CatalogEntry { details, mapping }
}

#[test]
fn the_echo_of_our_own_write_is_skipped_and_a_dashboard_edit_is_not() {
    let ours = event(
        "product.updated",
        serde_json::json!({"id": "tee", "name": "Tee", "description": null, "images": [],
            "active": true, "metadata": {"theirs": "1"}, "updated": 5, "default_price": "price_1"}),
    );
    let snap = event_snapshot(&ours).unwrap();
    assert!(snapshot_agrees(Some(&entry()), &snap));
    let edited = ours.replace("\"name\":\"Tee\"", "\"name\":\"Edited\"");
    assert!(!snapshot_agrees(
        Some(&entry()),
        &event_snapshot(&edited).unwrap()
    ));
    // While a catalog change is on its way, the sync runs whatever the event says.
    let mut pending = entry();
    pending.details.revision = 3;
    assert!(!snapshot_agrees(Some(&pending), &snap));
    // The same echo delivered by webhook (the bare event) is recognised too.
    let bare: serde_json::Value = serde_json::from_str(&ours).unwrap();
    let bare = event_snapshot(&bare["detail"].to_string()).unwrap();
    assert_eq!(bare, snap);
}

#[test]
fn price_and_link_events_agree_unless_the_mapped_price_or_owned_link_fields_changed() {
    let price = |id: &str, active: bool| {
        event_snapshot(&event(
            "price.updated",
            serde_json::json!({"id": id, "product": "tee", "unit_amount": 1500, "currency": "usd", "active": active}),
        ))
        .unwrap()
    };
    assert!(snapshot_agrees(Some(&entry()), &price("price_1", true)));
    assert!(
        !snapshot_agrees(Some(&entry()), &price("price_1", false)),
        "ours archived"
    );
    assert!(snapshot_agrees(Some(&entry()), &price("price_old", false)));
    let link = |changed: serde_json::Value| {
        let mut v: serde_json::Value = serde_json::from_str(&event(
            "payment_link.updated",
            serde_json::json!({"id": "plink_1", "active": false}),
        ))
        .unwrap();
        v["detail"]["data"]["previous_attributes"] = changed;
        event_snapshot(&v.to_string()).unwrap()
    };
    assert!(snapshot_agrees(
        None,
        &link(serde_json::json!({"active": true}))
    ));
    assert!(!snapshot_agrees(
        None,
        &link(serde_json::json!({"metadata": {}}))
    ));
    // The link guard's own write (its limit and its mark) is stock's: no sync for it.
    assert!(snapshot_agrees(
        None,
        &link(serde_json::json!({
            "restrictions": null,
            "metadata": {"stockbridge_limit": null}
        }))
    ));
    assert!(!snapshot_agrees(
        None,
        &link(serde_json::json!({"metadata": {"stockbridge_limit": "3", "store_id": "s1"}}))
    ));
}

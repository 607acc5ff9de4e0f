use super::*;

fn filter() -> EventFilter {
    EventFilter {
        source_prefix: "aws.partner/stripe.com/".into(),
        livemode: false,
    }
}

/// A Stripe catalog event of `kind` in its EventBridge envelope (shared with the sync's tests).
pub(crate) fn event(kind: &str, object: serde_json::Value) -> String {
    serde_json::json!({
        "source": "aws.partner/stripe.com/ed_test",
        "detail-type": kind,
        "detail": {"id": "evt_1", "type": kind, "livemode": false, "data": {"object": object}},
    })
    .to_string()
}

fn product(p: &str) -> SyncMessage {
    SyncMessage::Sync {
        target: SyncTarget::Product(ProductId::parse(p).unwrap()),
        trigger: Trigger::StripeChange,
    }
}

#[test]
fn a_stream_record_of_details_names_its_product() {
    let body = r#"{"eventName":"MODIFY","eventSource":"aws:dynamodb","dynamodb":{"Keys":{"pk":{"S":"PRODUCT#tee"},"sk":{"S":"DETAILS"}}}}"#;
    assert_eq!(
        decode_sync_message(body, &filter()).unwrap(),
        SyncMessage::Sync {
            target: SyncTarget::Product(ProductId::parse("tee").unwrap()),
            trigger: Trigger::CatalogChange
        }
    );
    let other = body.replace("DETAILS", "STRIPE");
    let err = decode_sync_message(&other, &filter()).unwrap_err();
    assert_eq!(err.field, "dynamodb.Keys");
}

#[test]
fn stripe_catalog_events_name_their_product() {
    assert_eq!(
        decode_sync_message(
            &event("product.updated", serde_json::json!({"id": "prod_1"})),
            &filter()
        )
        .unwrap(),
        product("prod_1")
    );
    assert_eq!(
        decode_sync_message(
            &event(
                "price.updated",
                serde_json::json!({"id": "price_1", "product": "prod_2"})
            ),
            &filter()
        )
        .unwrap(),
        product("prod_2")
    );
    assert_eq!(
        decode_sync_message(
            &event(
                "payment_link.updated",
                serde_json::json!({"id": "plink_1", "metadata": {"product_id": "prod_3"}})
            ),
            &filter()
        )
        .unwrap(),
        product("prod_3")
    );
    assert_eq!(
        decode_sync_message(
            &event(
                "payment_link.updated",
                serde_json::json!({"id": "plink_1", "metadata": {}})
            ),
            &filter()
        )
        .unwrap(),
        SyncMessage::Sync {
            target: SyncTarget::Link(PaymentLinkId::parse("plink_1").unwrap()),
            trigger: Trigger::StripeChange
        }
    );
}

#[test]
fn foreign_or_unrelated_events_are_skipped_and_garbage_is_an_error() {
    let foreign = event("product.updated", serde_json::json!({"id": "prod_1"}))
        .replace("aws.partner/stripe.com/ed_test", "evil.example");
    assert!(matches!(
        decode_sync_message(&foreign, &filter()).unwrap(),
        SyncMessage::Skip(_)
    ));
    let other = event("customer.created", serde_json::json!({"id": "cus_1"}));
    assert!(matches!(
        decode_sync_message(&other, &filter()).unwrap(),
        SyncMessage::Skip(_)
    ));
    assert_eq!(
        decode_sync_message("{", &filter()).unwrap_err().field,
        "body"
    );
    assert_eq!(
        decode_sync_message("{}", &filter()).unwrap_err().field,
        "source"
    );
    let no_id = event("product.updated", serde_json::json!({}));
    assert_eq!(
        decode_sync_message(&no_id, &filter()).unwrap_err().field,
        "detail.data.object.id"
    );
}

#[test]
fn a_webhooks_bare_event_needs_no_envelope_and_is_checked_the_same() {
    let envelope: serde_json::Value = serde_json::from_str(&event(
        "product.updated",
        serde_json::json!({"id": "tee", "object": "product"}),
    ))
    .unwrap();
    let mut detail = envelope["detail"].clone();
    detail["object"] = serde_json::json!("event");
    let envelope = serde_json::json!({"detail": detail});
    let bare = envelope["detail"].to_string();
    assert_eq!(
        decode_sync_message(&bare, &filter()).unwrap(),
        product("tee")
    );
    let mut live = envelope["detail"].clone();
    live["livemode"] = serde_json::json!(true);
    assert!(matches!(
        decode_sync_message(&live.to_string(), &filter()).unwrap(),
        SyncMessage::Skip(_)
    ));
    let mut no_id = envelope["detail"].clone();
    no_id["data"]["object"]
        .as_object_mut()
        .unwrap()
        .remove("id");
    assert_eq!(
        decode_sync_message(&no_id.to_string(), &filter())
            .unwrap_err()
            .field,
        "body.data.object.id"
    );
}

fn thin(kind: &str, id: &str, object_type: &str) -> String {
    serde_json::json!({
        "object": "v2.core.event", "id": "evt_thin", "type": kind, "livemode": false,
        "created": "2026-12-07T10:00:00.000Z",
        "related_object": {"id": id, "type": object_type, "url": "/v1/x"},
    })
    .to_string()
}

#[test]
fn a_thin_catalog_event_names_what_to_sync_by_its_object() {
    let sync = |target| SyncMessage::Sync {
        target,
        trigger: Trigger::StripeChange,
    };
    assert_eq!(
        decode_sync_message(&thin("v1.product.updated", "tee", "product"), &filter()).unwrap(),
        product("tee")
    );
    assert_eq!(
        decode_sync_message(&thin("v1.price.created", "price_1", "price"), &filter()).unwrap(),
        sync(SyncTarget::Price(
            stockbridge_domain::PriceId::parse("price_1").unwrap()
        ))
    );
    assert_eq!(
        decode_sync_message(
            &thin("v1.payment_link.updated", "plink_1", "payment_link"),
            &filter()
        )
        .unwrap(),
        sync(SyncTarget::Link(PaymentLinkId::parse("plink_1").unwrap()))
    );
    // The same thin event in an EventBridge envelope (a thin event destination).
    let envelope = serde_json::json!({"source": "aws.partner/stripe.com/ed_1",
        "detail-type": "v1.product.updated",
        "detail": serde_json::from_str::<serde_json::Value>(&thin("v1.product.updated", "tee", "product")).unwrap()});
    assert_eq!(
        decode_sync_message(&envelope.to_string(), &filter()).unwrap(),
        product("tee")
    );
    assert!(matches!(
        decode_sync_message(&thin("v1.customer.updated", "cus_1", "customer"), &filter()).unwrap(),
        SyncMessage::Skip(_)
    ));
    assert_eq!(
        decode_sync_message(&thin("v1.product.updated", "cus_1", "customer"), &filter())
            .unwrap_err()
            .field,
        "body.related_object"
    );
}

use serde_json::json;

use super::*;

/// Stripe's own sample (testdata/stripe/eventbridge-thin-envelope.json), as the webhook or the
/// EventBridge `detail` carries it.
fn sample() -> Value {
    let envelope: Value = serde_json::from_str(include_str!(
        "../../../../../testdata/stripe/eventbridge-thin-envelope.json"
    ))
    .unwrap();
    envelope["detail"].clone()
}

#[test]
fn stripes_sample_thin_event_decodes_to_its_type_time_and_object() {
    let event = sample();
    assert!(is_thin(&event));
    let thin = decode_thin(&event, "detail").unwrap();
    assert_eq!(thin.id, "evt_test_65SAMPLEthin");
    assert_eq!(thin.v1_type(), Some("checkout.session.completed"));
    assert_eq!(thin.created, 1_793_557_676); // 2026-11-01T18:27:56Z
    assert_eq!(thin.livemode, Some(false));
    assert_eq!(
        thin.related,
        Some(RelatedObject {
            id: "cs_test_a1SAMPLE".into(),
            kind: "checkout.session".into()
        })
    );
}

#[test]
fn unknown_fields_do_not_matter_and_a_ping_has_no_v1_type() {
    let ping = json!({"object": "v2.core.event", "id": "evt_1", "type": PING,
        "created": "2026-12-07T10:00:00Z", "reason": {"type": "request"}, "future": [1, 2],
        "related_object": {"id": "ed_1", "type": "v2.core.event_destination", "url": "/v2/x"}});
    let thin = decode_thin(&ping, "body").unwrap();
    assert_eq!(thin.v1_type(), None);
    assert_eq!(thin.livemode, None);
    assert!(!is_thin(&json!({"object": "event", "id": "evt_1"})));
}

#[test]
fn a_missing_or_unusable_field_is_named() {
    let mut event = sample();
    event["created"] = json!("yesterday");
    assert_eq!(
        decode_thin(&event, "body").unwrap_err().field,
        "body.created"
    );
    let mut event = sample();
    event.as_object_mut().unwrap().remove("type");
    assert_eq!(decode_thin(&event, "body").unwrap_err().field, "body.type");
    let mut event = sample();
    event["related_object"] = json!({"type": "checkout.session"});
    assert_eq!(
        decode_thin(&event, "body").unwrap_err().field,
        "body.related_object.id"
    );
}

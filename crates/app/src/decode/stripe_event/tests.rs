use super::*;
use serde_json::json;

fn filter() -> EventFilter {
    EventFilter {
        source_prefix: "aws.partner/stripe.com/".into(),
        livemode: false,
    }
}

fn sample() -> Value {
    serde_json::from_str(include_str!(
        "../../../../../testdata/stripe/eventbridge-envelope.json"
    ))
    .unwrap()
}

#[test]
fn the_published_sample_envelope_decodes() {
    let Decoded::Checkout(e) = decode(&sample(), &filter()).unwrap() else {
        panic!()
    };
    assert_eq!(e.kind, CheckoutKind::Completed);
    assert_eq!(e.event_id.as_str(), "evt_1SAMPLEa1b2c3");
    assert_eq!(e.session.id.as_str(), "cs_test_a1SAMPLE");
    assert_eq!(e.session.payment_status, SessionPaymentStatus::Paid);
    assert_eq!(e.session.payment_intent.unwrap().as_str(), "pi_3SAMPLE");
    assert_eq!(e.session.payment_link.unwrap().as_str(), "plink_1SAMPLE");
    assert_eq!(e.session.store_id.unwrap().as_str(), "store_chicago");
}

#[test]
fn the_sessions_amounts_are_read_and_an_odd_one_is_ignored_never_refused() {
    let mut v = sample();
    v["detail"]["data"]["object"]["currency"] = json!("USD");
    v["detail"]["data"]["object"]["amount_subtotal"] = json!(4500);
    let Decoded::Checkout(e) = decode(&v, &filter()).unwrap() else {
        panic!()
    };
    assert_eq!(
        (e.session.currency.as_deref(), e.session.amount_subtotal),
        (Some("usd"), Some(4500))
    );
    v["detail"]["data"]["object"]["currency"] = json!(7);
    v["detail"]["data"]["object"]["amount_subtotal"] = json!("4500");
    let Decoded::Checkout(e) = decode(&v, &filter()).unwrap() else {
        panic!()
    };
    assert_eq!(
        (e.session.currency, e.session.amount_subtotal),
        (None, None)
    );
}

#[test]
fn unknown_fields_and_a_different_api_version_do_not_break_decoding() {
    let mut v = sample();
    v["detail"]["api_version"] = json!("2030-01-01.future");
    v["detail"]["data"]["object"]["brand_new_field"] = json!({"nested": [1, 2]});
    v["detail"]["data"]["object"]["payment_intent"] =
        json!({"id": "pi_expanded", "object": "payment_intent"});
    let Decoded::Checkout(e) = decode(&v, &filter()).unwrap() else {
        panic!()
    };
    assert_eq!(e.session.payment_intent.unwrap().as_str(), "pi_expanded");
}

#[test]
fn a_missing_session_id_is_an_error_that_names_the_field() {
    let mut v = sample();
    v["detail"]["data"]["object"]
        .as_object_mut()
        .unwrap()
        .remove("id");
    let e = decode(&v, &filter()).unwrap_err();
    assert_eq!(e.field, "detail.data.object");
    assert!(e.message.contains("missing field `id`"), "{e}");
}

#[test]
fn a_mistyped_field_is_named_with_its_path() {
    let mut v = sample();
    v["detail"]["livemode"] = json!("no");
    let e = decode(&v, &filter()).unwrap_err();
    assert_eq!(e.field, "detail.livemode");
    let mut v = sample();
    v["detail"]["data"]["object"]["metadata"]["store_id"] = json!("a/b");
    assert_eq!(
        decode(&v, &filter()).unwrap_err().field,
        "detail.data.object.metadata.store_id"
    );
}

#[test]
fn a_foreign_source_is_refused() {
    let mut v = sample();
    v["source"] = json!("aws.partner/evil.example.com/x");
    assert!(matches!(
        decode(&v, &filter()).unwrap(),
        Decoded::Refused {
            refusal: Refusal::ForeignSource { .. },
            event_id: Some(_)
        }
    ));
}

#[test]
fn a_livemode_mismatch_is_refused() {
    let mut v = sample();
    v["detail"]["livemode"] = json!(true);
    assert!(matches!(
        decode(&v, &filter()).unwrap(),
        Decoded::Refused {
            refusal: Refusal::LivemodeMismatch { .. },
            ..
        }
    ));
}

#[test]
fn an_unknown_event_type_is_ignored() {
    let mut v = sample();
    v["detail"]["type"] = json!("customer.created");
    v["detail"]["data"] = json!({"object": {"id": "cus_1", "object": "customer"}});
    assert!(matches!(
        decode(&v, &filter()).unwrap(),
        Decoded::Ignored { .. }
    ));
}

#[test]
fn an_envelope_without_detail_names_detail() {
    let e = decode(
        &json!({"source": "aws.partner/stripe.com/x", "detail-type": "x"}),
        &filter(),
    )
    .unwrap_err();
    assert!(e.message.contains("detail"), "{e}");
}

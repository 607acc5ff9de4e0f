//! Every ready-to-invoke payload in `events/` decodes as documented in events/README.md.
use super::*;

fn load(name: &str) -> Result<Value, serde_json::Error> {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

fn filter() -> EventFilter {
    EventFilter {
        source_prefix: "aws.partner/stripe.com/".into(),
        livemode: false,
    }
}

#[test]
fn every_handled_sample_decodes_to_its_kind() {
    for (file, kind, status) in [
        (
            "checkout.session.completed.paid.json",
            CheckoutKind::Completed,
            SessionPaymentStatus::Paid,
        ),
        (
            "checkout.session.completed.paid.redelivered.json",
            CheckoutKind::Completed,
            SessionPaymentStatus::Paid,
        ),
        (
            "checkout.session.completed.unpaid.json",
            CheckoutKind::Completed,
            SessionPaymentStatus::Unpaid,
        ),
        (
            "checkout.session.async_payment_succeeded.json",
            CheckoutKind::AsyncPaymentSucceeded,
            SessionPaymentStatus::Paid,
        ),
        (
            "checkout.session.async_payment_failed.json",
            CheckoutKind::AsyncPaymentFailed,
            SessionPaymentStatus::Unpaid,
        ),
    ] {
        let Decoded::Checkout(e) = decode(&load(file).unwrap(), &filter()).unwrap() else {
            panic!("{file}")
        };
        assert_eq!((e.kind, e.session.payment_status), (kind, status), "{file}");
        assert_eq!(e.session.id.as_str(), "cs_test_events_demo", "{file}");
        assert_eq!(
            e.session.store_id.as_ref().map(StoreId::as_str),
            Some("store_demo"),
            "{file}"
        );
    }
}

#[test]
fn every_bad_sample_is_refused_ignored_or_named() {
    assert!(
        load("malformed.json").is_err(),
        "malformed.json is not JSON"
    );
    assert!(matches!(
        decode(&load("foreign-source.json").unwrap(), &filter()).unwrap(),
        Decoded::Refused { .. }
    ));
    assert!(matches!(
        decode(&load("livemode-mismatch.json").unwrap(), &filter()).unwrap(),
        Decoded::Refused { .. }
    ));
    assert!(matches!(
        decode(&load("unknown-type.json").unwrap(), &filter()).unwrap(),
        Decoded::Ignored { .. }
    ));
    let e = decode(&load("missing-field.json").unwrap(), &filter()).unwrap_err();
    assert!(
        e.to_string().contains("detail.data.object") && e.to_string().contains("id"),
        "{e}"
    );
}

#[test]
fn the_thin_and_webhook_samples_decode_as_thin_events_naming_their_object() {
    use crate::decode::thin_event::{decode_thin, is_thin};
    let envelope = load("thin.checkout.session.completed.json").unwrap();
    assert_eq!(envelope["detail-type"], "v1.checkout.session.completed");
    let thin = decode_thin(&envelope["detail"], "detail").unwrap();
    assert_eq!(thin.v1_type(), Some(CHECKOUT_COMPLETED));
    assert_eq!(thin.related.unwrap().id, "cs_test_events_demo");
    for file in [
        "webhook.event_destination.ping.json",
        "webhook.event_generation_failure.resolved.json",
    ] {
        let body = load(file).unwrap();
        assert!(is_thin(&body), "{file}");
        assert!(
            decode_thin(&body, "body").unwrap().v1_type().is_none(),
            "{file}"
        );
    }
    let fetched = load("webhook.event_generation_failure.resolved.fetched.json").unwrap();
    assert_eq!(
        fetched.pointer("/data/impact/related_object/id"),
        Some(&serde_json::json!("cs_test_events_demo"))
    );
}

#[test]
fn the_readme_table_names_exactly_the_files_in_events() {
    let dir = format!("{}/../../events", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    let readme = std::fs::read_to_string(format!("{dir}/README.md")).unwrap();
    let mut rows: Vec<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |").map(|(f, _)| f.to_owned()))
        .collect();
    rows.sort();
    assert_eq!(rows, files);
}

#[test]
fn the_refund_and_dispute_samples_decode_to_what_the_after_sale_rule_reads() {
    use stockbridge_domain::after_sale::Reversal;
    let refund = match decode(&load("charge.refunded.json").unwrap(), &filter()).unwrap() {
        Decoded::AfterSale(e) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        refund.facts.reversal,
        Reversal::Refund {
            amount_refunded: 2500,
            in_full: true
        }
    );
    assert_eq!(
        refund.payment_intent.as_ref().map(|p| p.as_str()),
        Some("pi_events_demo")
    );
    assert_eq!(refund.charge.as_str(), "ch_events_demo");
    assert!(refund.paid.is_some());
    let dispute = match decode(&load("charge.dispute.closed.json").unwrap(), &filter()).unwrap() {
        Decoded::AfterSale(e) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        dispute.facts.reversal,
        Reversal::DisputeClosed {
            status: "lost".into()
        }
    );
    assert_eq!(dispute.charge.as_str(), "ch_events_demo");
    // A refund without the fields the rule reads is refused, naming the field.
    let mut bad = load("charge.refunded.json").unwrap();
    bad["detail"]["data"]["object"]
        .as_object_mut()
        .unwrap()
        .remove("amount_refunded");
    let err = decode(&bad, &filter()).unwrap_err();
    assert_eq!(err.field, "detail.data.object");
    assert!(err.message.contains("amount_refunded"), "{err}");
}

//! The README and docs/deploy.md list the Stripe event types a deployment subscribes to between
//! `<!-- stripe-event-types ... -->` markers: exactly `subscribed_event_types()`, in order.

use stockbridge_app::decode::subscribed_event_types;

fn listed(doc: &str) -> Vec<String> {
    let path = format!("{}/../../{doc}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let start = text
        .find("<!-- stripe-event-types")
        .unwrap_or_else(|| panic!("{doc} has no <!-- stripe-event-types --> list"));
    let rest = &text[start..];
    let rest = &rest[rest.find("-->").unwrap() + 3..];
    let end = rest
        .find("<!-- /stripe-event-types -->")
        .unwrap_or_else(|| panic!("{doc}: the list is not closed"));
    rest[..end]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_lists_every_subscribed_event_type() {
    assert_eq!(listed("README.md"), subscribed_event_types());
}

#[test]
fn the_deploy_guide_lists_every_subscribed_event_type() {
    assert_eq!(listed("docs/deploy.md"), subscribed_event_types());
}

//! The Stripe checks: the key's mode and permissions, and the event destination.

use stockbridge_app::decode::{subscribed_event_types, thin_event_types};
use stockbridge_bootstrap::{Config, KeyKind};
use stockbridge_stripe::StripePayments;
use stockbridge_stripe::account::{Access, EventDestination, PERMISSIONS};
use stockbridge_stripe::transport::TransportError;

use super::{Finding, env};

/// The partner event source a destination feeds: its name and region.
pub type Source = (String, String);

/// Runs the Stripe checks; returns the partner event source to check on the AWS side.
pub async fn checks(config: &Config, findings: &mut Vec<Finding>, webhook: bool) -> Option<Source> {
    let named = env("STRIPE_EVENT_SOURCE_NAME");
    let (stripe, kind) = match stockbridge_bootstrap::payments(config).await {
        Ok(p) => p,
        Err(e) => {
            for check in ["stripe-key", "stripe-permissions", "event-destination"] {
                findings.push(Finding::skip(check, format!("no Stripe key: {e}")));
            }
            return named.map(|n| (n, env("AWS_REGION").unwrap_or_default()));
        }
    };
    findings.push(key(kind, config.livemode));
    findings.push(permissions(&stripe, kind).await);
    let (finding, source) = destination(&stripe, config.livemode, named.as_deref(), webhook).await;
    findings.push(finding);
    source.or_else(|| named.map(|n| (n, env("AWS_REGION").unwrap_or_default())))
}

fn mode(live: bool) -> &'static str {
    if live { "live" } else { "test" }
}

fn key(kind: KeyKind, livemode: bool) -> Finding {
    const CHECK: &str = "stripe-key";
    if kind.live != livemode {
        return Finding::fail(
            CHECK,
            format!(
                "a {} key, but STRIPE_LIVEMODE says {}: the functions would reject every event",
                mode(kind.live),
                mode(livemode)
            ),
            "store the key of the mode the stack runs in (StripeLivemode must match it)",
        );
    }
    if !kind.restricted {
        return Finding::warn(
            CHECK,
            format!(
                "a {} secret key: it may do anything on the account",
                mode(kind.live)
            ),
            "create a restricted key with only the permissions below (docs/deploy.md step 1)",
        );
    }
    Finding::ok(CHECK, format!("a {} restricted key", mode(kind.live)))
}

async fn permissions(stripe: &StripePayments, kind: KeyKind) -> Finding {
    const CHECK: &str = "stripe-permissions";
    let mut refused = Vec::new();
    let mut unknown = Vec::new();
    for p in PERMISSIONS {
        match stripe.probe(p).await {
            Access::Granted => {}
            Access::Refused(m) => refused.push(format!("{} {} ({m})", p.resource, p.access)),
            Access::Unknown(m) => unknown.push(format!("{} {}: {m}", p.resource, p.access)),
        }
    }
    if !refused.is_empty() {
        return Finding::fail(
            CHECK,
            format!("the key lacks: {}", refused.join("; ")),
            "edit the restricted key in the Dashboard (Developers → API keys) to grant them",
        );
    }
    if !unknown.is_empty() {
        return Finding::warn(
            CHECK,
            format!("could not tell: {}", unknown.join("; ")),
            "run preflight again",
        );
    }
    let what = if kind.restricted {
        "the key has"
    } else {
        "a secret key has"
    };
    let list: Vec<String> = PERMISSIONS
        .iter()
        .map(|p| format!("{} {}", p.resource, p.access))
        .collect();
    Finding::ok(CHECK, format!("{what} {}", list.join(", ")))
}

async fn destination(
    stripe: &StripePayments,
    livemode: bool,
    named: Option<&str>,
    webhook: bool,
) -> (Finding, Option<Source>) {
    const CHECK: &str = "event-destination";
    let all = match stripe.event_destinations().await {
        Ok(all) => all,
        Err(TransportError::Api {
            status: 401 | 403,
            message,
            ..
        }) => {
            return (
                Finding::warn(
                    CHECK,
                    format!(
                        "the key may not read event destinations (the stack does not need to): {message}"
                    ),
                    "check it in the Dashboard (Developers → Event destinations), or run preflight with a key that may read them",
                ),
                None,
            );
        }
        Err(e) => {
            return (
                Finding::warn(
                    CHECK,
                    format!("could not list event destinations: {e}"),
                    "run preflight again",
                ),
                None,
            );
        }
    };
    let source_of = |d: &EventDestination| {
        d.amazon_eventbridge
            .as_ref()
            .and_then(|eb| eb.source())
            .map(|(n, r)| (n.to_owned(), r.to_owned()))
    };
    let candidates: Vec<&EventDestination> = all
        .iter()
        .filter(|d| d.kind == "amazon_eventbridge")
        .filter(|d| named.is_none_or(|n| source_of(d).is_some_and(|(s, _)| s == n)))
        .collect();
    if webhook && (candidates.is_empty() || named.is_none()) {
        return (webhook_destinations(&all), None);
    }
    let Some(d) = candidates.first() else {
        let which = named.map_or(String::new(), |n| format!(" for {n}"));
        return (
            Finding::fail(
                CHECK,
                format!(
                    "no Amazon EventBridge event destination{which} in {} mode",
                    mode(livemode)
                ),
                "create one (docs/deploy.md step 2) with the event types listed there",
            ),
            None,
        );
    };
    let mut finding = judge(d);
    if candidates.len() > 1 && named.is_none() && finding.level == super::Level::Ok {
        finding = Finding::warn(
            CHECK,
            format!(
                "{} ({} EventBridge destinations: this is the first)",
                finding.detail,
                candidates.len()
            ),
            "set STRIPE_EVENT_SOURCE_NAME to the stack's StripeEventSourceName to check that one",
        );
    }
    (finding, source_of(d))
}

/// A webhook-only stack: the webhook destination that sends the order and catalog events, and
/// whether one (thin: v2 events need their own destination) sends the health event.
fn webhook_destinations(all: &[EventDestination]) -> Finding {
    const CHECK: &str = "event-destination";
    const HEALTH: &str = "v2.core.health.event_generation_failure.resolved";
    let hooks: Vec<&EventDestination> = all
        .iter()
        .filter(|d| d.kind == "webhook_endpoint")
        .collect();
    let Some(main) = hooks.iter().find(|d| {
        d.enabled_events
            .iter()
            .any(|e| e.ends_with("checkout.session.completed"))
    }) else {
        return Finding::fail(
            CHECK,
            "no webhook destination sends checkout.session.completed".to_owned(),
            "add the webhook endpoint (docs/deploy.md \"EventBridge or webhook\") with the events listed there",
        );
    };
    let finding = judge(main);
    let health = hooks
        .iter()
        .any(|d| d.status == "enabled" && d.enabled_events.iter().any(|e| e == HEALTH || e == "*"));
    if finding.level == super::Level::Fail || health {
        return finding;
    }
    Finding::warn(
        CHECK,
        format!("{}; no webhook destination sends {HEALTH}", finding.detail),
        "add a thin webhook destination for it, and its signing secret to the webhook's secret (docs/deploy.md)",
    )
}

/// What is wrong with a destination, most serious first.
fn judge(d: &EventDestination) -> Finding {
    const CHECK: &str = "event-destination";
    // A thin destination names the same types with a `v1.` prefix.
    let thin = d.event_payload == "thin";
    let wanted: Vec<String> = if thin {
        thin_event_types()
    } else {
        subscribed_event_types()
            .into_iter()
            .map(str::to_owned)
            .collect()
    };
    let missing: Vec<&str> = wanted
        .iter()
        .map(String::as_str)
        .filter(|t| !d.enabled_events.iter().any(|e| e == t || e == "*"))
        .collect();
    let status = d
        .amazon_eventbridge
        .as_ref()
        .map_or("unknown", |eb| eb.aws_event_source_status.as_str());
    let fix_events =
        "edit the destination's events in the Dashboard (docs/deploy.md step 2 lists them)";
    if d.status != "enabled" {
        return Finding::fail(
            CHECK,
            format!("{} is {}: no event reaches the stack", d.id, d.status),
            "enable it in the Dashboard (Developers → Event destinations)",
        );
    }
    if !thin && d.event_payload != "snapshot" {
        return Finding::fail(
            CHECK,
            format!(
                "{} sends {} payloads; the stack reads snapshot and thin events",
                d.id, d.event_payload
            ),
            "create a destination with the snapshot payload",
        );
    }
    if !missing.is_empty() {
        return Finding::fail(
            CHECK,
            format!("{} does not send: {}", d.id, missing.join(", ")),
            fix_events,
        );
    }
    if status == "deleted" {
        return Finding::fail(
            CHECK,
            format!(
                "{}'s partner event source was deleted (not associated with a bus within 7 days)",
                d.id
            ),
            "create a new destination and deploy the stack within 7 days",
        );
    }
    let version = d
        .snapshot_api_version
        .as_deref()
        .unwrap_or("the account's default");
    let ours = stockbridge_stripe::api_version();
    if status == "pending" {
        return Finding::warn(
            CHECK,
            format!("{} is ready; its partner event source is pending", d.id),
            "deploy the stack within 7 days of creating the destination (that associates the source)",
        );
    }
    if thin {
        return Finding::warn(
            CHECK,
            format!(
                "{} ({}): enabled, thin payloads, all {} event types, source {status}: each event costs one more Stripe request (its object is read back)",
                d.id,
                d.name,
                wanted.len()
            ),
            "for a busy store prefer snapshot payloads (docs/deploy.md \"Snapshot or thin\")",
        );
    }
    if d.snapshot_api_version.as_deref() != Some(ours) {
        return Finding::warn(
            CHECK,
            format!(
                "{} renders events in API version {version}; this build is generated for {ours}",
                d.id
            ),
            "the decoder reads only the fields it needs and tolerates others; pin the destination to this version when you next edit it",
        );
    }
    Finding::ok(
        CHECK,
        format!(
            "{} ({}): enabled, snapshot payloads, API version {version}, all {} event types, source {status}",
            d.id,
            d.name,
            subscribed_event_types().len()
        ),
    )
}

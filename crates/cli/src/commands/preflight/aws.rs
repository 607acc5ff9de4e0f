//! The AWS checks: Lambda's concurrency quota, the partner event source, the IoT topic
//! prefix, the table and its stream, the queues.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{IndexStatus, StreamViewType, TableStatus, TimeToLiveStatus};
use aws_sdk_eventbridge::types::EventSourceState;
use stockbridge_bootstrap::Config;
use stockbridge_iot::{Claim, IotPublisher};

use super::stripe::Source;
use super::{Finding, env};

/// What the template reserves with `ReserveConcurrency=yes`; Lambda keeps 100 unreserved.
pub const RESERVED: i32 = 14;
/// What the webhook function reserves on top (WebhookReservedConcurrency's default).
pub const WEBHOOK_RESERVED: i32 = 20;
const UNRESERVED_MINIMUM: i32 = 100;

fn error_text(e: &impl aws_sdk_dynamodb::error::ProvideErrorMetadata) -> String {
    format!(
        "{}: {}",
        e.code().unwrap_or("error"),
        e.message().unwrap_or("no message")
    )
}

/// The quota against the template's reservations. Before a deploy (`deployed` false) the
/// reservations must still fit in what is unreserved; after it they are among the reserved.
pub async fn lambda_quota(aws: &SdkConfig, reserve: bool, deployed: bool, extra: i32) -> Finding {
    let reserved = RESERVED + extra;
    const CHECK: &str = "lambda-quota";
    let settings = match aws_sdk_lambda::Client::new(aws)
        .get_account_settings()
        .send()
        .await
    {
        Ok(s) => s,
        Err(e) => {
            return Finding::warn(
                CHECK,
                format!(
                    "could not read the account's Lambda settings ({})",
                    error_text(&e)
                ),
                "allow lambda:GetAccountSettings, or read the quota in Service Quotas (Lambda: Concurrent executions)",
            );
        }
    };
    let limit = settings.account_limit();
    let total = limit.map_or(0, |l| l.concurrent_executions());
    let unreserved = limit
        .and_then(|l| l.unreserved_concurrent_executions())
        .unwrap_or(total);
    let short = if deployed {
        total < reserved + UNRESERVED_MINIMUM
    } else {
        unreserved < reserved + UNRESERVED_MINIMUM
    };
    if reserve && short {
        return Finding::fail(
            CHECK,
            format!(
                "the account may run {total} functions at once, {unreserved} of them unreserved; ReserveConcurrency=yes reserves {reserved} more (with the default CheckoutReservedConcurrency and WebhookReservedConcurrency) and Lambda keeps {UNRESERVED_MINIMUM} unreserved: the deploy would fail"
            ),
            "deploy with ReserveConcurrency=no (docs/deploy.md \"Concurrency\"), or ask AWS for a higher quota (Service Quotas: Lambda, Concurrent executions)",
        );
    }
    if !reserve && total <= 10 {
        return Finding::warn(
            CHECK,
            format!(
                "the account may run {total} functions at once: a burst of orders waits for each other"
            ),
            "ask AWS for a higher quota (Service Quotas: Lambda, Concurrent executions)",
        );
    }
    Finding::ok(
        CHECK,
        format!(
            "{total} concurrent executions ({unreserved} unreserved); ReserveConcurrency={} fits",
            if reserve { "yes" } else { "no" }
        ),
    )
}

pub async fn partner_source(aws: &SdkConfig, source: Option<&Source>) -> Finding {
    const CHECK: &str = "partner-source";
    let Some((name, region)) = source else {
        return Finding::skip(
            CHECK,
            "no event destination or STRIPE_EVENT_SOURCE_NAME to check",
        );
    };
    let here = aws.region().map(ToString::to_string).unwrap_or_default();
    if !region.is_empty() && !here.is_empty() && *region != here {
        return Finding::fail(
            CHECK,
            format!("{name} delivers to {region}; this check (and the stack) runs in {here}"),
            "deploy the stack in the destination's region, or create a destination for this one",
        );
    }
    let client = aws_sdk_eventbridge::Client::new(aws);
    let state = match client.describe_event_source().name(name).send().await {
        Ok(s) => s.state().cloned(),
        Err(e) => {
            return Finding::fail(
                CHECK,
                format!("{name}: {}", error_text(&e)),
                "check the name (docs/deploy.md step 3; the source appears once the destination exists) and that you may call events:DescribeEventSource",
            );
        }
    };
    let bus = client.describe_event_bus().name(name).send().await.is_ok();
    match (state, bus) {
        (Some(EventSourceState::Active), true) => Finding::ok(
            CHECK,
            format!("{name}: active, associated with its event bus"),
        ),
        (Some(EventSourceState::Deleted), _) => Finding::fail(
            CHECK,
            format!("{name} was deleted (not associated within 7 days)"),
            "create a new event destination in Stripe and deploy within 7 days",
        ),
        (_, false) => Finding::warn(
            CHECK,
            format!("{name} is not associated with an event bus yet"),
            "deploy the stack (its StripeEventBus associates the source) within 7 days of creating the destination",
        ),
        (state, true) => Finding::warn(
            CHECK,
            format!("{name}: state {state:?}"),
            "wait a minute and run preflight again",
        ),
    }
}

pub async fn topic_prefix(aws: &SdkConfig, config: &Config) -> Finding {
    const CHECK: &str = "iot-topic-prefix";
    if env("AWS_ENDPOINT_URL_IOT_DATA_PLANE").is_none() {
        return Finding::skip(
            CHECK,
            "AWS_ENDPOINT_URL_IOT_DATA_PLANE is not set (https:// and the stack's IotDataEndpoint)",
        );
    }
    let prefix = &config.topic_prefix;
    let iot = IotPublisher::new(aws_sdk_iotdataplane::Client::new(aws), prefix);
    let topic = iot.claim_topic();
    let table = &config.table_name;
    match iot.claim_prefix(table).await {
        Ok(Claim::Other(other)) => Finding::fail(
            CHECK,
            format!(
                "prefix {prefix:?} is used by the deployment with table {other}: both stacks' retained stock messages would overwrite each other"
            ),
            format!(
                "deploy with another IotTopicPrefix (e.g. stockbridge-sandbox); if that deployment is gone (a deleted stack), clear its claim: aws iot-data publish --topic '{topic}' --retain --payload ''"
            ),
        ),
        Ok(Claim::Ours) => Finding::ok(CHECK, format!("prefix {prefix:?} is this deployment's")),
        Ok(Claim::ClaimedNow) => Finding::ok(
            CHECK,
            format!("prefix {prefix:?} claimed for table {table} ({topic})"),
        ),
        Ok(Claim::Free) => Finding::ok(
            CHECK,
            format!("prefix {prefix:?} is not used by another deployment"),
        ),
        Err(e) => Finding::warn(
            CHECK,
            e.to_string(),
            "allow iot:GetRetainedMessage, iot:Publish and iot:RetainPublish on that topic",
        ),
    }
}

pub async fn table(aws: &SdkConfig, config: &Config) -> Vec<Finding> {
    if config.table_name.is_empty() {
        return vec![Finding::skip(
            "table",
            "TABLE_NAME is not set (before a deploy)",
        )];
    }
    let client = aws_sdk_dynamodb::Client::new(aws);
    let name = &config.table_name;
    let described = match client.describe_table().table_name(name).send().await {
        Ok(d) => d.table,
        Err(e) => {
            return vec![Finding::fail(
                "table",
                format!("{name}: {}", error_text(&e)),
                "check TABLE_NAME (the stack's output InventoryTableName)",
            )];
        }
    };
    let Some(t) = described else {
        return vec![Finding::fail(
            "table",
            format!("{name}: DynamoDB described nothing"),
            "run preflight again",
        )];
    };
    let mut problems = Vec::new();
    if t.table_status() != Some(&TableStatus::Active) {
        problems.push(format!("status {:?}", t.table_status()));
    }
    let index = t
        .global_secondary_indexes()
        .iter()
        .find(|i| i.index_name() == Some(stockbridge_dynamodb::PENDING_HOLDS_INDEX));
    let keys: Vec<&str> = index
        .map(|i| i.key_schema().iter().map(|k| k.attribute_name()).collect())
        .unwrap_or_default();
    if index.is_some() && keys != ["status", "hold_expires_at"] {
        problems.push(format!(
            "index {} is keyed on {keys:?}, not status and hold_expires_at",
            stockbridge_dynamodb::PENDING_HOLDS_INDEX
        ));
    }
    match index.and_then(|i| i.index_status()) {
        Some(IndexStatus::Active) => {}
        Some(s) => problems.push(format!(
            "index {} is {s:?} (the sweeper scans until it is active)",
            stockbridge_dynamodb::PENDING_HOLDS_INDEX
        )),
        None => problems.push(format!(
            "no index {}",
            stockbridge_dynamodb::PENDING_HOLDS_INDEX
        )),
    }
    let ttl = client.describe_time_to_live().table_name(name).send().await;
    let ttl_on = ttl
        .as_ref()
        .ok()
        .and_then(|t| t.time_to_live_description())
        .is_some_and(|d| {
            d.time_to_live_status() == Some(&TimeToLiveStatus::Enabled)
                && d.attribute_name() == Some("expires_at")
        });
    if !ttl_on {
        problems.push("TTL is not enabled on expires_at".into());
    }
    let table = if problems.is_empty() {
        Finding::ok(
            "table",
            format!(
                "{name}: active, index {} active, TTL on expires_at",
                stockbridge_dynamodb::PENDING_HOLDS_INDEX
            ),
        )
    } else {
        Finding::fail(
            "table",
            format!("{name}: {}", problems.join("; ")),
            "deploy template.yaml (it declares all of these), or wait for the index to finish building",
        )
    };
    vec![table, stream(name, &t)]
}

fn stream(name: &str, t: &aws_sdk_dynamodb::types::TableDescription) -> Finding {
    match (t.stream_specification(), t.latest_stream_arn()) {
        (Some(s), Some(arn))
            if s.stream_enabled() && s.stream_view_type() == Some(&StreamViewType::KeysOnly) =>
        {
            Finding::ok(
                "table-stream",
                format!("keys-only stream {arn} (the catalog-sync pipe's source)"),
            )
        }
        _ => Finding::fail(
            "table-stream",
            format!("{name} has no keys-only stream: catalog changes never reach Stripe"),
            "deploy template.yaml; turning the stream off and on orphans the pipe (redeploy it)",
        ),
    }
}

pub async fn queues(aws: &SdkConfig) -> Vec<Finding> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let client = aws_sdk_sqs::Client::new(aws);
    let mut out = Vec::new();
    for (name, var, dead_letters) in [
        ("catalog-sync queue", "CATALOG_SYNC_QUEUE_URL", false),
        ("catalog-sync DLQ", "CATALOG_SYNC_DLQ_URL", true),
        ("inventory DLQ", "INVENTORY_DLQ_URL", true),
        ("Stripe events DLQ", "STRIPE_EVENTS_DLQ_URL", true),
        ("catalog pipe DLQ", "CATALOG_PIPE_DLQ_URL", true),
        (
            "broadcaster failed batches",
            "BROADCASTER_FAILED_BATCHES_URL",
            true,
        ),
    ] {
        let Some(url) = env(var) else { continue };
        let r = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .send()
            .await;
        let depth = match r {
            Ok(o) => o
                .attributes()
                .and_then(|a| a.get(&A::ApproximateNumberOfMessages))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0),
            Err(e) => {
                out.push(Finding::fail(
                    "queues",
                    format!("{name}: {}", error_text(&e)),
                    format!("check {var}"),
                ));
                continue;
            }
        };
        out.push(match (dead_letters, depth) {
            (true, n) if n > 0 => Finding::warn(
                "queues",
                format!("{name}: {n} message(s) failed for good"),
                "look at them and redrive (docs/deploy.md step 7)",
            ),
            (_, n) => Finding::ok("queues", format!("{name}: {n} waiting")),
        });
    }
    if out.is_empty() {
        out.push(Finding::skip(
            "queues",
            "no queue URL set (CATALOG_SYNC_QUEUE_URL, ...; the stack's outputs)",
        ));
    }
    out
}

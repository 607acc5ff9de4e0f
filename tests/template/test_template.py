"""template.yaml read as data: what two stacks in one account need, and what keeps the
reconciler's alarms seeing at every log level (issue 12 §2). `sam validate --lint` (scripts/test)
checks the rest of the template's shape.

    .venv/bin/python -m pytest -q tests/template
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, ...) as {"Ref"/"Fn::X": value}."""


def _tag(loader: CfnLoader, suffix: str, node: yaml.Node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tag)


@pytest.fixture(scope="module")
def template() -> dict:
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=CfnLoader)


def functions(template: dict) -> dict[str, dict]:
    return {k: v["Properties"] for k, v in template["Resources"].items()
            if v["Type"] == "AWS::Serverless::Function"}


def schedules(template: dict):
    for name, props in functions(template).items():
        for event in (props.get("Events") or {}).values():
            if event["Type"] in ("Schedule", "ScheduleV2"):
                yield name, props, event["Properties"]


def test_every_schedule_is_named_per_stack_within_the_length_limit(template):
    found = list(schedules(template))
    assert {name for name, _, _ in found} == {"ReconcilerFunction", "SweeperFunction"}
    prefixes = [event["Name"]["Fn::Join"][1][0] for _, _, event in found]
    assert len(set(prefixes)) == len(prefixes), prefixes
    for name, _, event in found:
        # !Join ['-', [prefix, !Select [2, !Split ['/', !Ref AWS::StackId]]]]: the stack id's UUID.
        join = event["Name"]["Fn::Join"]
        prefix, unique = join[1]
        assert join[0] == "-" and re.fullmatch(r"[0-9a-zA-Z_.-]+", prefix), name
        assert unique == {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}, name
        assert len(prefix) + 1 + 36 <= 64, name


def test_scheduled_functions_are_not_retried_and_never_wait_long(template):
    found = list(schedules(template))
    assert len(found) == 2
    for name, props, event in found:
        assert props["EventInvokeConfig"]["MaximumRetryAttempts"] == 0, name
        assert props["EventInvokeConfig"]["MaximumEventAgeInSeconds"] == 60, name
        assert event["RetryPolicy"]["MaximumRetryAttempts"] == 0, name


def test_lines_without_a_level_survive_every_log_level(template):
    # Lambda files a line without a valid level or timestamp as INFO and drops it below
    # ApplicationLogLevel: the reconciler's metrics line, and the Rust runtime's JSON lines.
    # So Lambda filters nothing and every function filters its own logs at LogLevel.
    fns = functions(template)
    assert len(fns) == 7
    for name, props in fns.items():
        assert props["LoggingConfig"]["ApplicationLogLevel"] == "TRACE", name
        rust_log = props["Environment"]["Variables"]["RUST_LOG"]["Fn::FindInMap"]
        assert rust_log == ["TracingLevel", {"Ref": "LogLevel"}, "filter"], name
    levels = template["Parameters"]["LogLevel"]["AllowedValues"]
    mapping = template["Mappings"]["TracingLevel"]
    assert {level: v["filter"] for level, v in mapping.items()} == {
        level: ("error" if level == "FATAL" else level.lower()) for level in levels}


def test_the_rules_route_exactly_the_event_types_the_docs_list(template):
    readme = (ROOT / "README.md").read_text()
    listed = re.search(r"<!-- stripe-event-types.*?-->(.*?)<!-- /stripe-event-types -->",
                       readme, re.S).group(1)
    types = re.findall(r"`([a-z_.]+)`", listed)
    rules = [template["Resources"][r]["Properties"]["EventPattern"]["detail-type"]
             for r in ("StripeCheckoutEventsRule", "CatalogEventsRule")]
    # Each rule routes its snapshot types, then the same types as a thin destination names them.
    handled, catalog = types[:8], types[8:]
    assert len(types) == 14
    assert rules[0] == handled + [f"v1.{t}" for t in handled]
    assert rules[1] == catalog + [f"v1.{t}" for t in catalog]


def test_the_sam_cli_is_new_enough_to_build_rust_without_beta_features():
    pins = (ROOT / "infra" / "requirements.txt").read_text()
    m = re.search(r"^aws-sam-cli>=(\d+)\.(\d+)\.(\d+)", pins, re.M)
    assert m and tuple(map(int, m.groups())) >= (1, 156, 0), pins


def test_the_sweeper_queries_the_pending_holds_index_the_adapter_names(template):
    source = (ROOT / "crates/dynamodb/src/housekeeping.rs").read_text()
    name = re.search(r'PENDING_HOLDS_INDEX: &str = "([^"]+)"', source).group(1)
    table = template["Resources"]["InventoryTable"]["Properties"]
    [index] = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == name
    keys = {k["KeyType"]: k["AttributeName"] for k in index["KeySchema"]}
    assert keys == {"HASH": "status", "RANGE": "hold_expires_at"}
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert types["status"] == "S" and types["hold_expires_at"] == "N"
    statements = [s for p in functions(template)["SweeperFunction"]["Policies"]
                  if isinstance(p, dict) and "Statement" in p for s in p["Statement"]]
    [query] = [s for s in statements if s["Action"] == "dynamodb:Query"]
    assert query["Resource"] == {"Fn::Sub": f"${{InventoryTable.Arn}}/index/{name}"}


def test_every_function_that_writes_the_table_keeps_records_for_the_same_retention(template):
    for name, props in functions(template).items():
        env = props["Environment"]["Variables"]
        if "TABLE_NAME" in env:
            assert env.get("RETENTION_DAYS") == {"Ref": "RetentionDays"}, name
    pattern = re.compile(template["Parameters"]["RetentionDays"]["AllowedPattern"])
    accepted = [d for d in range(0, 20000) if pattern.match(str(d))]
    assert accepted[:2] == [0, 35] and accepted[-1] == 19999


def test_reservations_follow_one_switch_and_every_function_shares_one_stripe_budget(template):
    fns = functions(template)
    for name, props in fns.items():
        reserved = props.get("ReservedConcurrentExecutions")
        if name == "InventoryFunction":  # its own ReservedConcurrency parameter, -1 = none
            assert reserved["Fn::If"][0] == "HasReservedConcurrency"
            continue
        if name == "BroadcasterFunction":  # a stream reader: bounded by shards, no Stripe
            assert reserved is None and "STRIPE_SECRET_ARN" not in props["Environment"]["Variables"]
            continue
        if name == "WebhookFunction":  # optional, its own parameter, on top of the 14
            assert reserved["Fn::If"][1] == {"Ref": "WebhookReservedConcurrency"}
        assert reserved["Fn::If"][0] == "ReservesConcurrency", name
        assert reserved["Fn::If"][2] == {"Ref": "AWS::NoValue"}, name
        assert props["Environment"]["Variables"]["STRIPE_BUDGET_RPS"] == {"Fn::If": [
            "HasStripeBudget", {"Ref": "StripeBudgetRps"}, {"Fn::If": ["IsLive", 80, 20]}]}, name
    assert fns["InventoryFunction"]["Environment"]["Variables"]["STRIPE_BUDGET_RPS"]
    # What the functions accept (STRIPE_BUDGET_RPS from 1), with room for the priorities.
    budget = re.compile(template["Parameters"]["StripeBudgetRps"]["AllowedPattern"])
    assert [v for v in range(0, 1200) if budget.match(str(v))] == [0, *range(8, 1001)]
    assert not budget.match("0.5") and not budget.match("")
    # 14 reserved when on: the quota the parameter's description (and the preflight) name.
    on = sum(r["Fn::If"][1] if isinstance(r["Fn::If"][1], int) else 10
             for n, p in fns.items()
             if n not in ("InventoryFunction", "BroadcasterFunction", "WebhookFunction")
             for r in [p["ReservedConcurrentExecutions"]])
    assert on == 14
    assert "at least 114" in template["Parameters"]["ReserveConcurrency"]["Description"]


def test_the_alarms_on_metrics_watch_what_the_functions_print(template):
    # Both lines go through app::metrics::count_line: namespace stockbridge, no dimension.
    metrics = (ROOT / "crates/app/src/metrics.rs").read_text()
    assert '"Namespace": "stockbridge"' in metrics and '"Dimensions": [[]]' in metrics
    for source, metric, alarm_name in (
            ("crates/stripe/src/transport.rs", "StripeRateLimited", "StripeRateLimitedAlarm"),
            ("crates/broadcaster/src/handler.rs", "LevelsRefused", "BroadcasterLevelsRefusedAlarm"),
            ("crates/webhook/src/handler.rs", "WebhookSignatureRefused",
             "WebhookSignatureRefusedAlarm"),
            ("crates/broadcaster/src/handler.rs", "LowStockAlertsFailed",
             "LowStockAlertsFailedAlarm"),
            ("crates/broadcaster/src/handler.rs", "WaitlistAnnouncementsFailed",
             "WaitlistAnnouncementsFailedAlarm")):
        text = (ROOT / source).read_text()
        assert re.search(r'count_line\(\s*"' + metric + '"', text), (source, metric)
        alarm = template["Resources"][alarm_name]["Properties"]
        assert (alarm["Namespace"], alarm["MetricName"]) == ("stockbridge", metric)
        assert "Dimensions" not in alarm


def test_the_waitlist_events_reach_its_topic_and_only_its_functions_hold_its_secret(template):
    res = template["Resources"]
    topic = res["WaitlistTopic"]["Properties"]
    # EventBridge can publish to an encrypted topic only under a key whose policy lets it.
    assert topic["KmsMasterKeyId"] == {"Ref": "WaitlistTopicKey"}
    key_policy = res["WaitlistTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
    events_use = [st for st in key_policy if st.get("Principal") == {"Service": "events.amazonaws.com"}]
    assert events_use and {"kms:GenerateDataKey*", "kms:Decrypt"} <= set(events_use[0]["Action"])
    [publish] = res["WaitlistTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    rules = {r["Fn::GetAtt"].split(".")[0] for r in publish["Condition"]["ArnEquals"]["aws:SourceArn"]}
    assert rules == {"BackInStockRule", "WaitlistConfirmationRule"}
    for rule, detail_type in (("BackInStockRule", "stockbridge.back_in_stock"),
                              ("WaitlistConfirmationRule", "stockbridge.waitlist_confirmation_requested")):
        props = res[rule]["Properties"]
        assert props["EventPattern"]["detail-type"] == [detail_type]
        assert props["EventBusName"] == {"Ref": "MerchantEventBus"}
        assert props["Targets"][0]["Arn"] == {"Ref": "WaitlistTopic"}
        # The detail-type is the one the code publishes.
        assert f'"{detail_type}"' in (ROOT / "crates/app/src/waitlist.rs").read_text()
    holders = {name for name, props in functions(template).items()
               for st in statements(props)
               if st.get("Resource") == {"Ref": "WaitlistSecret"}}
    assert holders == {"CheckoutFunction", "BroadcasterFunction"}
    env = functions(template)["BroadcasterFunction"]["Environment"]["Variables"]
    assert env["WAITLIST_LINK_BASE"] == {"Fn::GetAtt": "CheckoutFunctionUrl.FunctionUrl"}


def test_the_deploy_guide_lists_every_parameter_of_the_template(template):
    guide = (ROOT / "docs/deploy.md").read_text()
    # The table under step 5's parameter header, up to the first line that is not a row.
    table = guide.split("\n| parameter | value |\n", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `([A-Za-z]+)` \|", table, re.M)
    assert len(rows) == len(set(rows)), "a parameter listed twice"
    assert set(rows) == set(template["Parameters"])


def test_only_the_reconciler_reads_the_topic_prefix_claim_and_only_that_topic(template):
    source = (ROOT / "crates/iot/src/claim.rs").read_text()
    assert 'format!("{}/_deployment", self.prefix)' in source
    readers = {}
    for name, props in functions(template).items():
        for p in props.get("Policies", []):
            for st in (p.get("Statement", []) if isinstance(p, dict) else []):
                if st["Action"] == "iot:GetRetainedMessage":
                    readers[name] = st["Resource"]
    assert readers == {"ReconcilerFunction": {"Fn::Sub": "arn:${AWS::Partition}:iot:${AWS::Region}:"
                                              "${AWS::AccountId}:topic/${IotTopicPrefix}/_deployment"}}


def statements(props: dict) -> list[dict]:
    return [st for p in props.get("Policies", []) if isinstance(p, dict)
            for st in p.get("Statement", [])]


def test_only_the_broadcaster_publishes_stock_levels_and_it_reads_stock_items_from_the_stream(
        template):
    stock_topics = {"Fn::Sub": "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:"
                               "topic/${IotTopicPrefix}/*"}
    claim = {"Fn::Sub": "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:"
                        "topic/${IotTopicPrefix}/_deployment"}
    publishers = {(name, json.dumps(st["Resource"], sort_keys=True))
                  for name, props in functions(template).items()
                  for st in statements(props) if "iot:Publish" in st["Action"]}
    # The broadcaster publishes stock; the reconciler only its claim on the prefix.
    assert publishers == {("BroadcasterFunction", json.dumps(stock_topics, sort_keys=True)),
                          ("ReconcilerFunction", json.dumps(claim, sort_keys=True))}
    for name, props in functions(template).items():
        env = props["Environment"]["Variables"]
        if "IOT_TOPIC_PREFIX" in env and name != "BroadcasterFunction":
            assert env.get("STOCK_LEVELS_FROM_STREAM") == "true", name
    resources = template["Resources"]
    mapping = resources["BroadcasterEventSourceMapping"]["Properties"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": "InventoryTable.StreamArn"}
    # The sort key of a stock item, as the adapter writes it.
    codec = (ROOT / "crates/dynamodb/src/codec.rs").read_text()
    assert 'key(item_pk(&item.store_id, &item.product_id), "ITEM")' in codec
    # ... and of a spread product's shard (a change of its level too).
    shards = (ROOT / "crates/dynamodb/src/shards.rs").read_text()
    assert 'key(shard_pk(store, product, i), "SHARD")' in shards
    # ... and of a merchant's restock the waitlist hears of.
    waitlist = (ROOT / "crates/dynamodb/src/waitlist.rs").read_text()
    assert 'const RESTOCKS: &str = "RESTOCKS";' in waitlist
    stock, restocks = mapping["FilterCriteria"]["Filters"]
    assert json.loads(stock["Pattern"]) == {
        "dynamodb": {"Keys": {"sk": {"S": ["ITEM", "SHARD"]}}}}
    assert json.loads(restocks["Pattern"]) == {
        "eventName": ["INSERT"], "dynamodb": {"Keys": {"pk": {"S": ["RESTOCKS"]}}}}
    # The local trigger filters as the mapping does.
    trigger = (ROOT / "devstack/stream_trigger.py").read_text()
    assert 'SORT_KEYS = ("ITEM", "SHARD")' in trigger
    assert 'RESTOCKS = "RESTOCKS"' in trigger and '"INSERT"' in trigger
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # AWS advises at most two readers per stream shard: the catalog pipe and this mapping.
    readers = [n for n, r in resources.items()
               if r["Type"] in ("AWS::Pipes::Pipe", "AWS::Lambda::EventSourceMapping")
               and (r["Properties"].get("Source") or r["Properties"].get("EventSourceArn"))
               == {"Fn::GetAtt": "InventoryTable.StreamArn"}]
    assert sorted(readers) == ["BroadcasterEventSourceMapping", "CatalogSyncPipe"]
    assert resources["InventoryTable"]["Properties"]["StreamSpecification"] == {
        "StreamViewType": "KEYS_ONLY"}
    [read] = [st for st in statements(functions(template)["BroadcasterFunction"])
              if st["Sid"] == "ReadStockItems"]
    # An item at a time; a spread product's shards in one BatchGetItem; nothing else.
    assert read["Action"] == ["dynamodb:GetItem", "dynamodb:BatchGetItem"]
    assert read["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["ITEM#*", "SHARD#*"]}}


def test_every_function_is_in_the_readme_diagram_and_layout_and_the_developers_guide(template):
    readme = (ROOT / "README.md").read_text()
    diagram = readme.split("```mermaid", 1)[1].split("```", 1)[0]
    layout = readme.split("\nLayout: ", 1)[1].split("\n\n", 1)[0]
    developers = (ROOT / "DEVELOPERS.md").read_text()
    crates = {p.name for p in (ROOT / "crates").iterdir() if (p / "Cargo.toml").exists()}
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        binary = resource["Metadata"]["BuildProperties"]["Binary"]
        assert f"{binary} Lambda" in diagram, (name, binary)
        assert binary in crates, (name, binary)
        assert f"`crates/{binary}`" in layout, (name, binary)
        assert f"`crates/{binary}`" in developers, (name, binary)
    # Every crate is named in the layout, one way or another.
    for crate in crates:
        assert crate in layout, crate


def test_the_webhook_is_optional_public_and_reads_only_its_own_secrets(template):
    resources = template["Resources"]
    for name, resource in resources.items():
        if "Webhook" in name:
            assert resource.get("Condition") == "HasWebhook", name
    assert template["Outputs"]["WebhookUrl"]["Condition"] == "HasWebhook"
    webhook = resources["WebhookFunction"]["Properties"]
    assert webhook["FunctionUrlConfig"]["AuthType"] == "NONE"
    statements = {s["Sid"]: s for s in webhook["Policies"][0]["Statement"]}
    assert statements["ReadStripeKeyAndSigningSecret"]["Resource"] == [
        {"Ref": "StripeSecretArn"}, {"Ref": "StripeWebhookSecretArn"}]
    assert statements["SendCatalogEvents"]["Action"] == "sqs:SendMessage"
    assert statements["SendCatalogEvents"]["Resource"] == {"Fn::GetAtt": "CatalogSyncQueue.Arn"}
    assert "dynamodb:Scan" not in statements["InventoryTable"]["Action"]
    env = webhook["Environment"]["Variables"]
    assert env["STRIPE_WEBHOOK_SECRET_ARN"] == {"Ref": "StripeWebhookSecretArn"}
    assert env["CATALOG_SYNC_QUEUE_URL"] == {"Ref": "CatalogSyncQueue"}


def test_eventbridge_is_optional_but_stripe_must_reach_the_stack_some_way(template):
    # Everything on the partner bus exists only with an event source; the rule refuses a stack
    # with neither an event source nor a webhook secret.
    resources = template["Resources"]
    on_bus = {name for name, r in resources.items()
              if "StripeEventBus" in json.dumps(r) or "CatalogEventsRule" in json.dumps(r)
              or "StripeCheckoutEventsRule" in json.dumps(r) or "StripeEventsRuleDLQ" in json.dumps(r)}
    on_bus |= {"StripeEventBus"}
    for name in on_bus:
        assert resources[name].get("Condition") == "HasEventBridge", name
    param = template["Parameters"]["StripeEventSourceName"]
    assert param["Default"] == "" and re.match(param["AllowedPattern"], "")
    (assertion,) = template["Rules"]["StripeDeliversSomewhere"]["Assertions"]
    refs = json.dumps(assertion["Assert"])
    assert "StripeEventSourceName" in refs and "StripeWebhookSecretArn" in refs


def test_the_broadcaster_writes_only_low_stock_attributes_and_puts_only_on_its_bus(template):
    props = template["Resources"]["BroadcasterFunction"]["Properties"]
    statements = {s["Sid"]: s for s in props["Policies"][0]["Statement"]}
    record = statements["RecordLowStockState"]
    assert record["Action"] == "dynamodb:UpdateItem"
    assert record["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] == ["ITEM#*"]
    assert sorted(record["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]) == [
        "low_stock", "low_stock_crossings", "low_stock_low", "low_stock_pending", "pk", "sk"]
    # The attributes the adapter writes or tests are exactly those.
    adapter = (ROOT / "crates/dynamodb/src/alerts.rs").read_text()
    assert set(re.findall(r"\b(low_stock\w*)\b", adapter)) <= {
        "low_stock", "low_stock_crossings", "low_stock_low", "low_stock_pending"}
    put = statements["PublishMerchantEvents"]
    assert put["Action"] == "events:PutEvents"
    assert "${MerchantEventBus}" in put["Resource"]["Fn::Sub"]
    assert props["Environment"]["Variables"]["MERCHANT_EVENT_BUS"] == {"Ref": "MerchantEventBus"}

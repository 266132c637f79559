"""Security-relevant facts of template.yaml, checked offline.

Run with `python3 -m unittest discover -s tests/template -v` (scripts/sam-check.sh does) or
pytest. Needs only what `pip install aws-sam-cli cfn-lint` brings: cfn-lint's YAML loader (it
understands `!Ref`, `!GetAtt`, `!Sub`...) and the SAM translator, which expands the template
the way CloudFormation will, so the IAM roles checked here are the ones that get deployed,
policy templates and managed policies included.

What is asserted:
- every function's role grants exactly the actions its code paths call, on its own tables,
  indexes and queues only (the table below cites the calls), each with exactly its conditions,
  with no `*` resource, no wildcard action beyond SAM's `sqs:SendMessage*`, and no managed
  policy beyond CloudWatch Logs;
- every UpdateItem grant is limited to the attributes the code's UpdateItem calls on that table
  name (read from shared/src/aws/), never returning items; only the admin API may PutItem
  (replace) subscriptions;
- the task queue redrives to an encrypted dead-letter queue, with a visibility timeout of at
  least 6x the dispatcher timeout; the dispatcher reports batch item failures;
- the tables mirror shared/src/aws/setup.rs (keys, types, indexes, projections), with TTL on
  `expires_at` where setup.rs enables it, on-demand, encrypted, with point-in-time recovery;
- no secret travels as a plaintext parameter or environment variable;
- routes, binaries and environment match what the functions expect.

These checks run on the template as deployed with its parameters' defaults; what the optional
settings (custom domain, KMS key, concurrency caps) change is test_deployment_options.py's.
"""

from __future__ import annotations

import copy
import json
import os
import re
import unittest
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    tomllib = None

from cfnlint.decode import decode

from combinations import resolve

ROOT = Path(__file__).resolve().parents[2]
# HOOKHUB_TEMPLATE: check another file (e.g. a deliberately broken copy, to see a test fail).
TEMPLATE = Path(os.environ.get("HOOKHUB_TEMPLATE") or ROOT / "template.yaml")



def updating_only(*attributes: str) -> dict:
    """The condition of an UpdateItem grant: these attributes (key, updated and condition
    attributes alike) and nothing returned. `ReturnValues` is always present on UpdateItem
    (NONE by default), hence StringEquals rather than StringEqualsIfExists."""
    return {
        "ForAllValues:StringEquals": {"dynamodb:Attributes": sorted(attributes)},
        "StringEquals": {"dynamodb:ReturnValues": ["NONE"]},
    }


def unconditional(*actions: str) -> dict[str, None]:
    return dict.fromkeys(actions)


# mark_enqueued: SET enqueued REMOVE pending, on key (pk, id), if attribute_exists(source_id).
MARK_ENQUEUED = updating_only("pk", "id", "enqueued", "pending", "source_id")
# disable_subscription: SET enabled, disabled_reason, updated_at, on key id, if attribute_exists(id);
# record_outcome / claim_probe: SET health and those three, if updated_at and health are as read.
DISABLE_SUBSCRIPTION = updating_only("id", "enabled", "disabled_reason", "updated_at", "health")
# list_subscription_routes: a Scan projecting only the subscription's id and filters.
def scanning_only(*attributes: str) -> dict:
    """A Scan that can read these attributes and no others (`Select` is always sent)."""
    return {
        "ForAllValues:StringEquals": {"dynamodb:Attributes": sorted(attributes)},
        "StringEquals": {"dynamodb:Select": ["SPECIFIC_ATTRIBUTES"]},
    }


SCAN_ROUTES = scanning_only("id", "sources", "event_types")
# reserve_slot: a conditional PutItem of the `rate#{subscription_id}` item, and no other key.
RATE_ITEM_PREFIX = "rate#"

# The grants each function needs, from its code paths (shared/src/aws/*.rs): for each resource,
# each action with the condition of the statement granting it (None: none). A resource is a
# logical id, optionally with an index path. `sqs:SendMessage*` is what SAM's
# SQSSendMessagePolicy grants: SendMessage (SendMessageBatch has no IAM action of its own).
EXPECTED_GRANTS: dict[str, dict[str, dict[str, dict | None]]] = {
    "ReceiverFunction": {
        # SourceStore::get_source
        "SourcesTable": unconditional("dynamodb:GetItem"),
        # the fan-out plan stored with the event: list_subscription_routes (cached), only the
        # attributes SUBSCRIPTION_ROUTE_ATTRIBUTES names
        "SubscriptionsTable": {"dynamodb:Scan": SCAN_ROUTES},
        # insert_event (PutItem of the event, then of its dedup marker; a duplicate deletes
        # its own pending event: DeleteItem), the marker and original (GetItem), mark_enqueued
        # (UpdateItem)
        "EventsTable": {
            **unconditional("dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteItem"),
            "dynamodb:UpdateItem": MARK_ENQUEUED,
        },
        # enqueue_dispatch: SqsQueue::send
        "TaskQueue": unconditional("sqs:SendMessage*"),
    },
    "DispatcherFunction": {
        # get_event; the sweep's list_unenqueued (BatchGetItem), finishing interrupted inserts
        # (GetItem and PutItem of the marker, DeleteItem of a pending duplicate) and
        # mark_enqueued (UpdateItem); operational events: insert_event (PutItem) and
        # mark_enqueued; rate limits: reserve_slot (GetItem, conditional PutItem of the rate# item)
        "EventsTable": {
            **unconditional(
                "dynamodb:GetItem",
                "dynamodb:BatchGetItem",
                "dynamodb:PutItem",
                "dynamodb:DeleteItem",
                "dynamodb:Query",
            ),
            "dynamodb:UpdateItem": MARK_ENQUEUED,
        },
        "EventsTable/index/unenqueued": unconditional("dynamodb:Query"),
        # bulk replay pages: events_page by id range (one source's index, or all sources from
        # the table's own shards: Query on the table, below)
        "EventsTable/index/by-source": unconditional("dynamodb:Query"),
        # list_subscriptions, get_subscription, disable_subscription (410 Gone), health updates
        "SubscriptionsTable": {
            **unconditional("dynamodb:Scan", "dynamodb:GetItem"),
            "dynamodb:UpdateItem": DISABLE_SUBSCRIPTION,
        },
        # attempts_for_event (Query, then BatchGetItem), bulk recovery pages
        # (attempts_for_subscription_page: Query), record_attempt (PutItem); no index
        "AttemptsTable": unconditional(
            "dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:PutItem"
        ),
        # event source mapping (receive, delete, attributes), retries and hops (send),
        # dead_letter's delete of the original
        "TaskQueue": unconditional(
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:SendMessage*",
        ),
        # dead_letter: malformed tasks
        "DeadLetterQueue": unconditional("sqs:SendMessage*"),
    },
    "AdminFunction": {
        # create/update (PutItem), show (GetItem), list (Scan), delete (DeleteItem)
        "SourcesTable": unconditional(
            "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Scan", "dynamodb:DeleteItem"
        ),
        "SubscriptionsTable": unconditional(
            "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Scan", "dynamodb:DeleteItem"
        ),
        # get_event, list_events (all sources: Query of the table's shards, summary attributes
        # projected; one source: keys from by-source, then BatchGetItem of the summary
        # attributes); operational events of PATCH
        # enabled: insert_event (PutItem; never deduplicated, so no marker) and mark_enqueued
        "EventsTable": {
            **unconditional(
                "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:Query"
            ),
            "dynamodb:UpdateItem": MARK_ENQUEUED,
        },
        "EventsTable/index/by-source": unconditional("dynamodb:Query"),
        # attempts_for_event (Query, then BatchGetItem), attempts_for_subscription (Query)
        "AttemptsTable": unconditional("dynamodb:Query", "dynamodb:BatchGetItem"),
        # replay_event: send_batch of deliver tasks; operational events' dispatch task
        "TaskQueue": unconditional("sqs:SendMessage*"),
    },
}

# The DynamoStore field holding each table's name, as the Rust code refers to it.
TABLE_FIELDS = {
    "self.sources": "SourcesTable",
    "self.subscriptions": "SubscriptionsTable",
    "self.events": "EventsTable",
    "self.attempts": "AttemptsTable",
}

# The only managed policy a role may carry: SAM attaches it to every role it generates, and it
# grants CloudWatch Logs writes only.
ALLOWED_MANAGED_POLICIES = {"arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}

EXPECTED_TABLES = ("SourcesTable", "SubscriptionsTable", "EventsTable", "AttemptsTable")

# Variables AwsSettings::from_env requires in every function.
AWS_SETTINGS_VARS = {
    "HOOKHUB_SOURCES_TABLE": "SourcesTable",
    "HOOKHUB_SUBSCRIPTIONS_TABLE": "SubscriptionsTable",
    "HOOKHUB_EVENTS_TABLE": "EventsTable",
    "HOOKHUB_ATTEMPTS_TABLE": "AttemptsTable",
    "HOOKHUB_QUEUE_URL": "TaskQueue",
    "HOOKHUB_DLQ_URL": "DeadLetterQueue",
}

SECRETISH = re.compile(r"key|secret|token|password|passphrase|credential|hash|private", re.I)
# Names that match SECRETISH but hold no secret: the ARN of a KMS key is an identifier.
NOT_SECRETS = {"KmsKeyArn"}
SHA256_PATTERN = "^[0-9a-f]{64}$"


def load_template() -> dict:
    template, matches = decode(str(TEMPLATE))
    if matches:
        raise AssertionError(f"template.yaml does not parse: {matches}")
    # Plain dicts and lists (cfn-lint's nodes carry line numbers).
    return json.loads(json.dumps(template))


def transform(template: dict) -> dict:
    """The template as CloudFormation will see it after the SAM transform (offline)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.translator.transform import transform as sam_transform

    sam = copy.deepcopy(template)
    for resource in sam["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            # `sam build`/`sam package` replace the local path with an S3 location.
            resource["Properties"]["CodeUri"] = "s3://bucket/key"

    class NoManagedPolicyLookups:
        # Policies here are ARNs or inline; a name lookup (an IAM call) would be a bug.
        def load(self):
            return {}

    return sam_transform(sam, {}, NoManagedPolicyLookups())


def as_list(value):
    return value if isinstance(value, list) else [value]


def resource_key(resource) -> str:
    """The logical id (plus index path) an IAM Resource entry points at, the parameter it
    refers to (e.g. KmsKeyArn), or the literal."""
    if isinstance(resource, str):
        return resource
    if set(resource) == {"Ref"}:
        return resource["Ref"]
    if "Fn::GetAtt" in resource:
        target = resource["Fn::GetAtt"]
        name, attribute = target if isinstance(target, list) else target.split(".", 1)
        if attribute != "Arn":
            raise AssertionError(f"IAM resource from GetAtt {name}.{attribute}, not an ARN")
        return name
    if "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        if isinstance(sub, str):
            # "${EventsTable.Arn}/index/by-source"
            match = re.fullmatch(r"\$\{(\w+)\.Arn\}(/index/[\w.-]+)?", sub)
            if not match:
                raise AssertionError(f"unexpected IAM resource {sub!r}")
            return match.group(1) + (match.group(2) or "")
        text, variables = sub
        # SAM's SQS policy templates: arn:...:${queueName} with queueName = GetAtt X.QueueName.
        if text == "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${queueName}":
            target = variables["queueName"].get("Fn::GetAtt")
            if target and target[1] == "QueueName":
                return target[0]
        raise AssertionError(f"unexpected IAM resource {sub!r}")
    raise AssertionError(f"unexpected IAM resource {resource!r}")


def normalized_condition(condition: dict | None) -> dict | None:
    """A statement's Condition with every value as a sorted list (IAM treats a single value and
    a one-element list alike)."""
    if not condition:
        return None
    return {
        operator: {key: sorted(as_list(values), key=sort_key) for key, values in keys.items()}
        for operator, keys in condition.items()
    }


def sort_key(value) -> str:
    """Condition values are strings, or intrinsics such as Fn::Sub (sorted by their JSON)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def role_grants(role: dict) -> dict[str, dict[str, dict | None]]:
    """Resource -> action -> the condition of the statement granting it. An action granted
    twice on one resource is refused: the laxer statement would silently win."""
    grants: dict[str, dict[str, dict | None]] = {}
    for policy in role["Properties"].get("Policies", []):
        for statement in as_list(policy["PolicyDocument"]["Statement"]):
            for forbidden in ("NotAction", "NotResource", "NotPrincipal", "Principal"):
                assert forbidden not in statement, f"{policy['PolicyName']}: {forbidden}"
            assert statement["Effect"] == "Allow", statement
            condition = normalized_condition(statement.get("Condition"))
            for resource in as_list(statement["Resource"]):
                actions = grants.setdefault(resource_key(resource), {})
                for action in as_list(statement["Action"]):
                    assert action not in actions, f"{action} on {resource} granted twice"
                    actions[action] = condition
    return grants


def rust_update_items() -> dict[str, set[str]]:
    """Table logical id -> the attributes the code's UpdateItem calls name (key, update and
    condition expressions), read from the calls in shared/src/aws/."""
    constants = rust_constants()
    attributes: dict[str, set[str]] = {}
    for path in sorted((ROOT / "shared/src/aws").rglob("*.rs")):
        source = path.read_text()
        for call in re.findall(r"\.update_item\(\)(.*?)\.send\(\)", source, re.S):
            table = TABLE_FIELDS[re.search(r"\.table_name\(&?([\w.]+)\)", call).group(1)]
            names = set(re.findall(r'set_key\(Some\(key\("(\w+)"', call))
            if re.search(r"set_key\(Some\(key\)\)", call):
                # A whole key built by a helper (the events table's (pk, id), `event_keys`).
                spec = setup_rs_tables()[table]
                names |= {spec["hash"], spec["range"]} - {None}
            for kind in ("update_expression", "condition_expression"):
                for expression in re.findall(kind + r'\(\s*(?:format!\()?"([^"]*)"', call):
                    expression = re.sub(r"\{(\w+)\}", lambda m: constants[m.group(1)], expression)
                    # Attribute names: words that are not :values, keywords or functions.
                    words = re.findall(r"(?<![:#\w])([A-Za-z_]\w*)\b(?!\s*\()", expression)
                    names |= {w for w in words if w not in UPDATE_KEYWORDS}
            assert names, f"no attributes found in an UpdateItem call of {path}"
            attributes.setdefault(table, set()).update(names)
    return attributes


UPDATE_KEYWORDS = {"SET", "REMOVE", "ADD", "DELETE", "AND", "OR", "NOT", "BETWEEN", "IN"}


def rust_constants() -> dict[str, str]:
    source = (ROOT / "shared/src/aws/dynamo.rs").read_text()
    return dict(re.findall(r'pub const (\w+): &str = "([^"]*)";', source))


def setup_rs_tables() -> dict[str, dict]:
    """The table layout `Aws::ensure_resources` creates, read from shared/src/aws/setup.rs."""
    source = (ROOT / "shared/src/aws/setup.rs").read_text()
    constants = rust_constants()

    def value(token: str) -> str:
        token = token.strip()
        if token.startswith('"'):
            return token.strip('"')
        return constants[token]

    def spec(body: str) -> dict:
        hash_key = re.search(r"hash:\s*([^,]+),", body).group(1)
        range_match = re.search(r"range:\s*Some\(([^)]+)\)", body)
        indexes = {}
        for name, ihash, irange, projection in re.findall(
            r"index\(\s*(\w+),\s*([\w\"-]+),\s*([\w\"-]+),\s*ProjectionType::(\w+),?\s*\)", body
        ):
            indexes[value(name)] = {
                "hash": value(ihash),
                "range": value(irange),
                "projection": {"KeysOnly": "KEYS_ONLY", "All": "ALL", "Include": "INCLUDE"}[projection],
            }
        return {
            "hash": value(hash_key),
            "range": value(range_match.group(1)) if range_match else None,
            "indexes": indexes,
            "ttl": constants["EXPIRES_AT"] if re.search(r"ttl:\s*true", body) else None,
        }

    blocks = dict(re.findall(r"let (\w+) = \|?\w*\|? ?TableSpec \{(.*?)\n\s*\};", source, re.S))
    plain = spec(blocks["plain"])
    # Every key attribute is a string (ScalarAttributeType::S) and no other type is used.
    assert set(re.findall(r"ScalarAttributeType::(\w+)", source)) == {"S"}, (
        "setup.rs uses a key type other than S: update the template and this test"
    )
    tables = {
        "SourcesTable": plain,
        "SubscriptionsTable": plain,
        "EventsTable": spec(blocks["events"]),
        "AttemptsTable": spec(blocks["attempts"]),
    }
    # Guard the parser itself: what docs/aws-layout.md describes.
    assert set(tables["EventsTable"]["indexes"]) == {"by-source", "unenqueued"}, tables
    assert (tables["EventsTable"]["hash"], tables["EventsTable"]["range"]) == ("pk", "id"), tables
    assert set(tables["AttemptsTable"]["indexes"]) == set(), tables
    assert (tables["AttemptsTable"]["hash"], tables["AttemptsTable"]["range"]) == ("pk", "sk"), tables
    return tables


class TemplateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.raw = raw = load_template()
        cls.template = resolve(raw, {})
        cls.resources = cls.template["Resources"]
        cls.parameters = cls.template["Parameters"]
        cls.deployed = resolve(transform(raw), {})["Resources"]

    def functions(self):
        return {
            name: resource
            for name, resource in self.resources.items()
            if resource["Type"] == "AWS::Serverless::Function"
        }

    # --- IAM ------------------------------------------------------------------------------

    def test_each_function_has_exactly_its_grants_on_its_own_resources(self):
        self.assertEqual(set(self.functions()), set(EXPECTED_GRANTS))
        for function, expected in EXPECTED_GRANTS.items():
            with self.subTest(function=function):
                role = self.deployed[f"{function}Role"]
                self.assertEqual(role_grants(role), expected)

    def test_only_the_admin_api_may_replace_subscriptions(self):
        for function in self.functions():
            with self.subTest(function=function):
                grants = role_grants(self.deployed[f"{function}Role"])
                puts = "dynamodb:PutItem" in grants.get("SubscriptionsTable", {})
                self.assertEqual(puts, function == "AdminFunction")

    def test_the_receivers_scan_grant_names_exactly_the_attributes_the_code_projects(self):
        source = (ROOT / "shared/src/aws/dynamo.rs").read_text()
        found = re.search(r"SUBSCRIPTION_ROUTE_ATTRIBUTES: \[&str; \d+\] = \[([^\]]*)\]", source)
        self.assertIsNotNone(found, "SUBSCRIPTION_ROUTE_ATTRIBUTES in dynamo.rs")
        projected = re.findall(r'"(\w+)"', found.group(1))
        self.assertEqual(SCAN_ROUTES, scanning_only(*projected))
        # The projection is the only Scan that passes attribute names; every other list reads
        # whole records (the dispatcher and admin, whose grants have no condition).
        self.assertEqual(source.count(".projection_expression("), 1)

    def test_update_item_grants_name_exactly_the_attributes_the_code_updates(self):
        in_code = rust_update_items()
        # Guard the parser: the two UpdateItem calls docs/aws-layout.md describes.
        self.assertEqual(
            in_code,
            {
                "EventsTable": {"pk", "id", "enqueued", "pending", "source_id"},
                "SubscriptionsTable": {"id", "enabled", "disabled_reason", "updated_at", "health"},
            },
        )
        for function in self.functions():
            grants = role_grants(self.deployed[f"{function}Role"])
            for resource, actions in grants.items():
                if "dynamodb:UpdateItem" not in actions:
                    continue
                with self.subTest(function=function, resource=resource):
                    self.assertEqual(
                        actions["dynamodb:UpdateItem"], updating_only(*in_code[resource])
                    )

    def test_puts_and_deletes_on_events_come_from_the_insert_and_rate_items(self):
        """Events and markers are put by the insert protocol (insert.rs), rate-limit items under
        their own key prefix (rate.rs); the only DeleteItem on events is the insert's delete of
        a duplicate's own copy: still pending, or (sent first) a copy of the same dedup key."""
        rate = (ROOT / "shared/src/aws/dynamo/rate.rs").read_text()
        self.assertIn(f'const RATE_PREFIX: &str = "{RATE_ITEM_PREFIX}";', rate)
        self.assertIn('format!("{RATE_PREFIX}{subscription_id}")', rate)
        for path in sorted((ROOT / "shared/src/aws").rglob("*.rs")):
            source = path.read_text()
            for call in re.findall(r"\.put_item\(\)(.*?)\.send\(\)", source, re.S):
                table = re.search(r"\.table_name\(&?([\w.]+)\)", call).group(1)
                if TABLE_FIELDS.get(table) == "EventsTable":
                    self.assertIn(path.name, ("insert.rs", "rate.rs"), "puts on events")
            for call in re.findall(r"\.delete_item\(\)(.*?)\.send\(\)", source, re.S):
                table = re.search(r"\.table_name\(&?([\w.]+)\)", call).group(1)
                if TABLE_FIELDS.get(table) == "EventsTable":
                    self.assertEqual(path.name, "insert.rs", "deletes on events")
                    self.assertTrue(
                        "attribute_exists({PENDING})" in call or "{DEDUP_KEY} = :dk" in call,
                        f"only a duplicate's copy: {call}",
                    )

    def test_no_wildcards_and_no_broad_managed_policies(self):
        for name, resource in self.deployed.items():
            if resource["Type"] != "AWS::IAM::Role":
                continue
            with self.subTest(role=name):
                managed = set(resource["Properties"].get("ManagedPolicyArns", []))
                self.assertLessEqual(managed, ALLOWED_MANAGED_POLICIES)
                for policy in resource["Properties"].get("Policies", []):
                    for statement in as_list(policy["PolicyDocument"]["Statement"]):
                        for resource_entry in as_list(statement["Resource"]):
                            self.assertNotIn("*", json.dumps(resource_entry).replace("index/", ""))
                        for action in as_list(statement["Action"]):
                            self.assertTrue(
                                "*" not in action or action == "sqs:SendMessage*",
                                f"{name}: wildcard action {action}",
                            )

    def test_functions_use_sam_generated_roles(self):
        # An explicit Role would bypass the checks above.
        for name, function in self.functions().items():
            self.assertNotIn("Role", function["Properties"], name)

    # --- SQS ------------------------------------------------------------------------------

    def test_task_queue_redrives_to_an_encrypted_dead_letter_queue(self):
        queue = self.resources["TaskQueue"]["Properties"]
        dlq = self.resources["DeadLetterQueue"]["Properties"]
        self.assertEqual(queue["RedrivePolicy"]["deadLetterTargetArn"], {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]})
        self.assertEqual(queue["RedrivePolicy"]["maxReceiveCount"], {"Ref": "MaxReceiveCount"})
        self.assertIn("MaxReceiveCount", self.parameters)
        for props in (queue, dlq):
            self.assertIs(props.get("SqsManagedSseEnabled"), True)
            self.assertEqual(props.get("MessageRetentionPeriod"), 1209600)
        self.assertNotIn("RedrivePolicy", dlq)

    def test_visibility_timeout_is_at_least_six_times_the_dispatcher_timeout(self):
        timeout = self.resources["DispatcherFunction"]["Properties"]["Timeout"]
        self.assertEqual(timeout, {"Ref": "DispatcherTimeout"})
        visibility = self.resources["TaskQueue"]["Properties"]["VisibilityTimeout"]
        self.assertEqual(
            visibility,
            {"Fn::FindInMap": ["DispatcherTimeouts", {"Ref": "DispatcherTimeout"}, "VisibilityTimeout"]},
        )
        allowed = self.parameters["DispatcherTimeout"]["AllowedValues"]
        window = self.parameters["DispatcherBatchingWindow"]["MaxValue"]
        mapping = self.template["Mappings"]["DispatcherTimeouts"]
        self.assertEqual(set(mapping), {str(t) for t in allowed})
        for seconds in allowed:
            with self.subTest(timeout=seconds):
                self.assertGreaterEqual(
                    mapping[str(seconds)]["VisibilityTimeout"], 6 * int(seconds) + int(window)
                )

    def test_dispatcher_reports_batch_item_failures(self):
        mappings = [
            r["Properties"]
            for r in self.deployed.values()
            if r["Type"] == "AWS::Lambda::EventSourceMapping"
        ]
        self.assertEqual(len(mappings), 1)
        esm = mappings[0]
        self.assertEqual(esm["EventSourceArn"], {"Fn::GetAtt": ["TaskQueue", "Arn"]})
        self.assertEqual(esm["FunctionName"], {"Ref": "DispatcherFunction"})
        self.assertEqual(esm["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        self.assertEqual(esm["ScalingConfig"]["MaximumConcurrency"], {"Ref": "DispatcherMaxConcurrency"})
        self.assertIn("BatchSize", esm)
        self.assertIn("MaximumBatchingWindowInSeconds", esm)

    def test_dispatcher_may_feed_its_own_queue(self):
        # Retry chains and 900 s hops are longer than recursive loop detection's 16 hops.
        self.assertEqual(self.resources["DispatcherFunction"]["Properties"]["RecursiveLoop"], "Allow")

    # --- DynamoDB -------------------------------------------------------------------------

    def test_tables_mirror_setup_rs(self):
        for name, spec in setup_rs_tables().items():
            with self.subTest(table=name):
                props = self.resources[name]["Properties"]
                keys = {k["KeyType"]: k["AttributeName"] for k in props["KeySchema"]}
                self.assertEqual(keys.get("HASH"), spec["hash"])
                self.assertEqual(keys.get("RANGE"), spec["range"])
                indexes = {
                    ix["IndexName"]: {
                        "hash": next(k["AttributeName"] for k in ix["KeySchema"] if k["KeyType"] == "HASH"),
                        "range": next(k["AttributeName"] for k in ix["KeySchema"] if k["KeyType"] == "RANGE"),
                        "projection": ix["Projection"]["ProjectionType"],
                    }
                    for ix in props.get("GlobalSecondaryIndexes", [])
                }
                self.assertEqual(indexes, spec["indexes"])
                self.assertNotIn("LocalSecondaryIndexes", props)
                key_attributes = {spec["hash"]} | {spec["range"]} - {None}
                for ix in spec["indexes"].values():
                    key_attributes |= {ix["hash"], ix["range"]}
                self.assertEqual(
                    {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]},
                    {a: "S" for a in key_attributes},
                )
                ttl = props.get("TimeToLiveSpecification")
                if spec["ttl"]:
                    self.assertEqual(ttl, {"AttributeName": spec["ttl"], "Enabled": True})
                else:
                    self.assertIsNone(ttl)

    def test_ttl_is_on_for_events_and_attempts(self):
        for name in ("EventsTable", "AttemptsTable"):
            ttl = self.resources[name]["Properties"]["TimeToLiveSpecification"]
            self.assertEqual(ttl, {"AttributeName": "expires_at", "Enabled": True})

    def test_tables_are_on_demand_encrypted_recoverable_and_retained(self):
        for name in EXPECTED_TABLES:
            with self.subTest(table=name):
                resource = self.resources[name]
                props = resource["Properties"]
                self.assertEqual(props["BillingMode"], "PAY_PER_REQUEST")
                self.assertIs(props["SSESpecification"]["SSEEnabled"], True)
                self.assertIs(props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], True)
                self.assertNotIn("TableName", props)
                self.assertEqual(resource["DeletionPolicy"], "Retain")
                self.assertEqual(resource["UpdateReplacePolicy"], "Retain")

    # --- Secrets --------------------------------------------------------------------------

    def test_no_plaintext_secret_parameter(self):
        secretish = [
            name for name in self.parameters if SECRETISH.search(name) and name not in NOT_SECRETS
        ]
        self.assertIn("AdminKeySha256", secretish)
        for name in secretish:
            with self.subTest(parameter=name):
                parameter = self.parameters[name]
                self.assertNotIn("Default", parameter)
                if parameter["Type"].startswith("AWS::SSM::Parameter::"):
                    continue
                self.assertIs(parameter.get("NoEcho"), True)
                self.assertTrue(name.endswith("Sha256"), f"{name}: only hashes may be parameters")
                self.assertEqual(parameter.get("AllowedPattern"), SHA256_PATTERN)

    def test_no_secret_in_function_environments(self):
        globals_env = self.template["Globals"]["Function"]["Environment"]["Variables"]
        for name, function in self.functions().items():
            variables = {**globals_env, **function["Properties"].get("Environment", {}).get("Variables", {})}
            with self.subTest(function=name):
                # The plain admin key is for local development only.
                self.assertNotIn("HOOKHUB_ADMIN_KEY", variables)
                self.assertNotIn("HOOKHUB_ALLOW_PRIVATE_TARGETS", variables)
                self.assertNotIn("HOOKHUB_CREATE_RESOURCES", variables)
                for variable, value in variables.items():
                    if SECRETISH.search(variable):
                        self.assertEqual(variable, "HOOKHUB_ADMIN_KEY_SHA256")
                        self.assertEqual(value, {"Ref": "AdminKeySha256"})
        admin = self.resources["AdminFunction"]["Properties"]["Environment"]["Variables"]
        self.assertEqual(admin["HOOKHUB_ADMIN_KEY_SHA256"], {"Ref": "AdminKeySha256"})

    # --- Functions, API -------------------------------------------------------------------

    def test_functions_build_their_crates_binary(self):
        expected = {"ReceiverFunction": "receiver", "DispatcherFunction": "dispatcher", "AdminFunction": "admin"}
        globals_fn = self.template["Globals"]["Function"]
        self.assertEqual(globals_fn["Runtime"], "provided.al2023")
        self.assertEqual(globals_fn["Handler"], "bootstrap")
        self.assertEqual(globals_fn["Architectures"], [{"Ref": "Architecture"}])
        self.assertEqual(self.parameters["Architecture"]["Default"], "arm64")
        self.assertEqual(globals_fn["LoggingConfig"]["LogFormat"], "JSON")
        for name, binary in expected.items():
            with self.subTest(function=name):
                function = self.resources[name]
                self.assertEqual(function["Metadata"]["BuildMethod"], "rust-cargolambda")
                self.assertEqual(function["Metadata"]["BuildProperties"]["Binary"], binary)
                crate = ROOT / function["Properties"]["CodeUri"] / "Cargo.toml"
                self.assertTrue(crate.is_file(), crate)
                if tomllib:
                    manifest = tomllib.loads(crate.read_text())
                    bins = [b["name"] for b in manifest.get("bin", [])]
                    self.assertIn(binary, bins)

    def test_every_function_gets_its_resource_names(self):
        globals_env = self.template["Globals"]["Function"]["Environment"]["Variables"]
        for variable, logical_id in AWS_SETTINGS_VARS.items():
            self.assertEqual(globals_env[variable], {"Ref": logical_id})

    def test_routes(self):
        for name, function in self.functions().items():
            for event in function["Properties"].get("Events", {}).values():
                # Routes are ApiGatewayV2 resources (Ingress); an `SQS` event would attach
                # AWSLambdaSQSQueueExecutionRole (sqs:* on *).
                self.assertNotIn(event["Type"], ("HttpApi", "Api", "SQS"), name)
        routes = set()
        for resource in self.resources.values():
            if resource["Type"] == "AWS::ApiGatewayV2::Route":
                props = resource["Properties"]
                self.assertEqual(props["ApiId"], {"Ref": "HttpApi"})
                integration = props["Target"]["Fn::Sub"].removeprefix("integrations/${").rstrip("}")
                target = self.resources[integration]["Properties"]
                self.assertEqual(target["PayloadFormatVersion"], "2.0")
                self.assertEqual(target["IntegrationType"], "AWS_PROXY")
                function = target["IntegrationUri"]["Fn::GetAtt"][0]
                method, path = props["RouteKey"].split(" ")
                routes.add((method, path, function))
        self.assertEqual(
            routes,
            {
                ("POST", "/webhooks/{source}", "ReceiverFunction"),
                ("GET", "/webhooks/{source}", "ReceiverFunction"),
                ("ANY", "/v1/{proxy+}", "AdminFunction"),
                ("GET", "/console", "AdminFunction"),
                ("GET", "/console/{proxy+}", "AdminFunction"),
            },
        )
        stage = self.resources["HttpApiStage"]["Properties"]
        # The `$default` stage: lambda_http sees unprefixed paths.
        self.assertEqual((stage["StageName"], stage["AutoDeploy"]), ("$default", True))
        self.assertIn("ThrottlingRateLimit", stage["DefaultRouteSettings"])
        self.assertIn("ThrottlingBurstLimit", stage["DefaultRouteSettings"])

    def test_sweep_schedule_invokes_the_dispatcher(self):
        sweep = self.resources["DispatcherFunction"]["Properties"]["Events"]["Sweep"]
        # `Schedule` (an EventBridge rule) sends "detail-type": "Scheduled Event", which the
        # dispatcher recognises; `ScheduleV2` would send a payload of its own.
        self.assertEqual(sweep["Type"], "Schedule")

    def test_alarms(self):
        dlq = self.resources["DeadLetterQueueAlarm"]["Properties"]
        self.assertEqual(dlq["MetricName"], "ApproximateNumberOfMessagesVisible")
        self.assertEqual(dlq["Dimensions"][0]["Value"], {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]})
        self.assertEqual((dlq["Threshold"], dlq["ComparisonOperator"]), (0, "GreaterThanThreshold"))
        errors = self.resources["DispatcherErrorsAlarm"]["Properties"]
        self.assertEqual((errors["Namespace"], errors["MetricName"]), ("AWS/Lambda", "Errors"))
        self.assertEqual(errors["Dimensions"][0]["Value"], {"Ref": "DispatcherFunction"})
        # Both absent by default (no AlarmEmail): the template's own conditions.
        raw = self.raw["Resources"]
        self.assertEqual(raw["AlarmTopic"]["Condition"], "HasAlarmEmail")
        self.assertEqual(raw["AlarmEmailSubscription"]["Condition"], "HasAlarmEmail")

    def test_observability_alarms(self):
        ratio = self.resources["DeliveryFailureRatioAlarm"]["Properties"]
        self.assertEqual(ratio["Threshold"], {"Ref": "DeliveryFailureRatioThreshold"})
        returned = [m for m in ratio["Metrics"] if m["ReturnData"]]
        self.assertEqual([m["Id"] for m in returned], ["ratio"])
        stats = {m["Id"]: m["MetricStat"]["Metric"] for m in ratio["Metrics"] if "MetricStat" in m}
        self.assertEqual(set(stats), {"succeeded", "retrying", "failed", "gone"})
        for outcome, metric in stats.items():
            # The EMF roll-up by outcome alone (hookhub::metrics::Metric::rollups).
            self.assertEqual(metric["MetricName"], "deliveries")
            self.assertEqual(metric["Namespace"], {"Ref": "MetricsNamespace"})
            self.assertEqual(metric["Dimensions"], [{"Name": "outcome", "Value": outcome}])
        age = self.resources["OldestMessageAgeAlarm"]["Properties"]
        self.assertEqual((age["Namespace"], age["MetricName"]), ("AWS/SQS", "ApproximateAgeOfOldestMessage"))
        self.assertEqual(age["Dimensions"][0]["Value"], {"Fn::GetAtt": ["TaskQueue", "QueueName"]})
        signatures = self.resources["SignatureRejectionsAlarm"]["Properties"]
        self.assertEqual(signatures["MetricName"], "webhooks_received")
        self.assertEqual(
            {d["Name"]: d["Value"] for d in signatures["Dimensions"]},
            {"outcome": "rejected", "reason": "signature_invalid"},
        )
        for name in ("DeliveryFailureRatioAlarm", "OldestMessageAgeAlarm", "SignatureRejectionsAlarm"):
            props = self.resources[name]["Properties"]
            self.assertEqual(props["TreatMissingData"], "notBreaching")

    def test_functions_get_the_metrics_namespace(self):
        env = self.raw["Globals"]["Function"]["Environment"]["Variables"]
        self.assertEqual(env["HOOKHUB_METRICS_NAMESPACE"], {"Ref": "MetricsNamespace"})

    def test_dashboard_body_is_json_with_every_widget(self):
        body, values = self.resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
        self.assertEqual(set(values), {"Ns", "Dlq", "Queue"})
        text = re.sub(r"\$\{[^}]+\}", "x", body)
        dashboard = json.loads(text)
        titles = [w["properties"]["title"] for w in dashboard["widgets"]]
        metrics = json.dumps(dashboard)
        for needed in ("webhooks_received", "deliveries", "delivery_lag", "p50", "p99",
                       "ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage",
                       "Errors", "Throttles", "SEARCH"):
            self.assertIn(needed, metrics)
        self.assertEqual(len(titles), 7, titles)
        for name in ("ReceiverFunction", "DispatcherFunction", "AdminFunction"):
            self.assertIn("${" + name + "}", body)

    def test_outputs(self):
        outputs = self.template["Outputs"]
        self.assertTrue(outputs["IngestUrl"]["Value"]["Fn::Sub"].endswith("/webhooks/{source}"))
        self.assertTrue(outputs["AdminApiUrl"]["Value"]["Fn::Sub"].endswith("/v1"))
        for name in ("TaskQueueUrl", "DeadLetterQueueUrl", *(t + "Name" for t in EXPECTED_TABLES)):
            self.assertIn(name, outputs)


if __name__ == "__main__":
    unittest.main()

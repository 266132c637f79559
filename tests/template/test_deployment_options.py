"""What the optional deployment settings change, for every combination in combinations.py
(custom domain off / on / on with a hosted zone, KMS key off / on, concurrency caps and alarm
e-mail unset / set), on the SAM-transformed template as CloudFormation deploys it:

- KMS: with KmsKeyArn, every table, queue, log group and the alarm topic use that key (and
  nothing else: SSE-SQS off), and each function role gets exactly kms:Decrypt and
  kms:GenerateDataKey on it, through DynamoDB and SQS only; without it, AWS-managed encryption
  and no kms:* grant at all. Every other grant stays exactly test_template.py's.
- Custom domain: the API Gateway domain (regional, TLS 1.2, the certificate), its mapping to
  the API's `$default` stage, the Route 53 alias only with a hosted zone; the URL outputs and
  the receiver's public URL on the domain. Without: none of it, execute-api URLs.
- Concurrency: reserved concurrency on the receiver and dispatcher only when set.

The lint-side counterpart (cfn-lint, `sam validate --lint`, checkov on each combination) is in
scripts/sam-check.sh.
"""

from __future__ import annotations

import json
import shlex
import unittest

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    tomllib = None

from combinations import COMBINATIONS, resolve
from test_template import (
    ROOT,
    EXPECTED_GRANTS,
    load_template,
    normalized_condition,
    role_grants,
    transform,
)

TABLES = ("SourcesTable", "SubscriptionsTable", "EventsTable", "AttemptsTable")
QUEUES = ("TaskQueue", "DeadLetterQueue")
LOG_GROUPS = ("ApiAccessLogGroup", "ReceiverLogGroup", "DispatcherLogGroup", "AdminLogGroup")
DOMAIN_RESOURCES = {"ApiDomainName", "ApiDomainMapping", "ApiDomainRecord"}
KEY = {"Ref": "KmsKeyArn"}

# Each function reads and writes DynamoDB items (Decrypt of the table key) and sends to an
# encrypted queue (GenerateDataKey; the dispatcher's receives need Decrypt, granted already),
# through those two services only. CloudWatch Logs and alarms use the key under its key policy.
KMS_GRANT = {
    "kms:Decrypt": None,
    "kms:GenerateDataKey": None,
}
VIA_DYNAMODB_AND_SQS = normalized_condition(
    {
        "StringEquals": {
            "kms:ViaService": [
                {"Fn::Sub": "dynamodb.${AWS::Region}.amazonaws.com"},
                {"Fn::Sub": "sqs.${AWS::Region}.amazonaws.com"},
            ]
        }
    }
)
EXECUTE_API = "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"


class DeploymentOptionsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.raw = load_template()
        cls.transformed = transform(cls.raw)

    def each(self):
        """(name, parameters, resources as deployed) for every combination, in a subTest."""
        for name, parameters in COMBINATIONS.items():
            with self.subTest(combination=name):
                yield name, parameters, resolve(self.transformed, parameters)

    def test_every_condition_and_no_value_is_resolved(self):
        for _, _, deployed in self.each():
            text = json.dumps({k: deployed[k] for k in ("Resources", "Outputs")})
            self.assertNotIn("Fn::If", text)
            self.assertNotIn("AWS::NoValue", text)

    def test_kms_grants_are_exactly_decrypt_and_generate_data_key_via_dynamodb_and_sqs(self):
        for _, parameters, deployed in self.each():
            kms = "KmsKeyArn" in parameters
            for function, expected in EXPECTED_GRANTS.items():
                grants = role_grants(deployed["Resources"][f"{function}Role"])
                key_grants = grants.pop("KmsKeyArn", None)
                # Everything else is exactly the default's (test_template.py).
                self.assertEqual(grants, expected, function)
                if not kms:
                    self.assertIsNone(key_grants, function)
                    continue
                self.assertEqual(set(key_grants), set(KMS_GRANT), function)
                for action, condition in key_grants.items():
                    self.assertEqual(condition, VIA_DYNAMODB_AND_SQS, f"{function} {action}")
            # No other role, and no kms:* anywhere but on the key.
            roles = [n for n, r in deployed["Resources"].items() if r["Type"] == "AWS::IAM::Role"]
            self.assertEqual(sorted(roles), sorted(f"{f}Role" for f in EXPECTED_GRANTS))

    def test_data_at_rest_uses_the_key_when_given_and_aws_managed_keys_otherwise(self):
        for _, parameters, deployed in self.each():
            resources = deployed["Resources"]
            kms = "KmsKeyArn" in parameters
            for table in TABLES:
                sse = resources[table]["Properties"]["SSESpecification"]
                expected = {"SSEEnabled": True}
                if kms:
                    expected |= {"SSEType": "KMS", "KMSMasterKeyId": KEY}
                self.assertEqual(sse, expected, table)
            for queue in QUEUES:
                props = resources[queue]["Properties"]
                if kms:
                    self.assertEqual(props.get("KmsMasterKeyId"), KEY, queue)
                    self.assertNotIn("SqsManagedSseEnabled", props, queue)
                else:
                    self.assertIs(props.get("SqsManagedSseEnabled"), True, queue)
                    self.assertNotIn("KmsMasterKeyId", props, queue)
            for group in LOG_GROUPS:
                if group == "ApiAccessLogGroup" and parameters.get("Ingress") == "FunctionUrl":
                    self.assertNotIn(group, resources)  # no API, no access log
                    continue
                self.assertEqual(resources[group]["Properties"].get("KmsKeyId"), KEY if kms else None, group)
            topic = resources.get("AlarmTopic")
            self.assertEqual(topic is not None, "AlarmEmail" in parameters)
            if topic:
                self.assertEqual(topic["Properties"].get("KmsMasterKeyId"), KEY if kms else None)

    def test_custom_domain_resources(self):
        for _, parameters, deployed in self.each():
            resources = deployed["Resources"]
            domain = "DomainName" in parameters
            zone = "HostedZoneId" in parameters
            expected = ({"ApiDomainName", "ApiDomainMapping"} if domain else set()) | (
                {"ApiDomainRecord"} if zone else set()
            )
            self.assertEqual(DOMAIN_RESOURCES & set(resources), expected)
            if not domain:
                continue
            name = resources["ApiDomainName"]["Properties"]
            self.assertEqual(name["DomainName"], {"Ref": "DomainName"})
            self.assertEqual(
                name["DomainNameConfigurations"],
                [
                    {
                        "CertificateArn": {"Ref": "CertificateArn"},
                        "EndpointType": "REGIONAL",
                        "SecurityPolicy": "TLS_1_2",
                    }
                ],
            )
            mapping = resources["ApiDomainMapping"]["Properties"]
            stage = mapping["Stage"]["Ref"]
            # The stage SAM generates for the HTTP API: `$default`, so paths are unprefixed.
            self.assertEqual(resources[stage]["Type"], "AWS::ApiGatewayV2::Stage")
            self.assertEqual(resources[stage]["Properties"]["StageName"], "$default")
            self.assertEqual(
                {k: v for k, v in mapping.items() if k != "Stage"},
                {"DomainName": {"Ref": "ApiDomainName"}, "ApiId": {"Ref": "HttpApi"}},
            )
            if zone:
                record = resources["ApiDomainRecord"]["Properties"]
                self.assertEqual(
                    record,
                    {
                        "HostedZoneId": {"Ref": "HostedZoneId"},
                        "Name": {"Ref": "DomainName"},
                        "Type": "A",
                        "AliasTarget": {
                            "DNSName": {"Fn::GetAtt": ["ApiDomainName", "RegionalDomainName"]},
                            "HostedZoneId": {"Fn::GetAtt": ["ApiDomainName", "RegionalHostedZoneId"]},
                        },
                    },
                )

    def test_outputs_and_public_url_follow_the_domain(self):
        for _, parameters, deployed in self.each():
            if parameters.get("Ingress") == "FunctionUrl":
                continue  # test_ingress_and_capacity.py
            outputs = deployed["Outputs"]
            domain = "DomainName" in parameters
            base = "https://${DomainName}" if domain else EXECUTE_API
            self.assertEqual(outputs["IngestUrl"]["Value"], {"Fn::Sub": base + "/webhooks/{source}"})
            self.assertEqual(outputs["AdminApiUrl"]["Value"], {"Fn::Sub": base + "/v1"})
            self.assertEqual(outputs["ExecuteApiUrl"]["Value"], {"Fn::Sub": EXECUTE_API})
            self.assertEqual("ApiDomainTarget" in outputs, domain)
            if domain:
                self.assertEqual(
                    outputs["ApiDomainTarget"]["Value"],
                    {"Fn::GetAtt": ["ApiDomainName", "RegionalDomainName"]},
                )
            receiver = deployed["Resources"]["ReceiverFunction"]["Properties"]
            public_url = receiver["Environment"]["Variables"].get("HOOKHUB_PUBLIC_URL")
            self.assertEqual(public_url, {"Fn::Sub": "https://${DomainName}"} if domain else None)

    def test_an_explicit_public_url_wins_over_the_domain(self):
        parameters = {**COMBINATIONS["domain_aws-keys_defaults"], "PublicUrl": "https://x.example.org"}
        deployed = resolve(self.transformed, parameters)
        variables = deployed["Resources"]["ReceiverFunction"]["Properties"]["Environment"]["Variables"]
        self.assertEqual(variables["HOOKHUB_PUBLIC_URL"], {"Ref": "PublicUrl"})

    def test_reserved_concurrency_only_when_set(self):
        for _, parameters, deployed in self.each():
            for function, parameter in (
                ("ReceiverFunction", "ReceiverReservedConcurrency"),
                ("DispatcherFunction", "DispatcherReservedConcurrency"),
                ("AdminFunction", None),
            ):
                props = deployed["Resources"][function]["Properties"]
                expected = {"Ref": parameter} if parameter in parameters else None
                self.assertEqual(props.get("ReservedConcurrentExecutions"), expected, function)

    def test_unset_means_minus_one_and_empty(self):
        parameters = self.raw["Parameters"]
        for name in ("ReceiverReservedConcurrency", "DispatcherReservedConcurrency"):
            self.assertEqual((parameters[name]["Default"], parameters[name]["MinValue"]), (-1, -1))
        for name in ("KmsKeyArn", "DomainName", "CertificateArn", "HostedZoneId"):
            self.assertEqual(parameters[name]["Default"], "")

    def test_combinations_cover_each_option(self):
        keys = [frozenset(p) for p in COMBINATIONS.values()]
        for option in ("DomainName", "HostedZoneId", "KmsKeyArn", "ReceiverReservedConcurrency"):
            self.assertTrue(any(option in k for k in keys) and any(option not in k for k in keys))
        self.assertTrue(any({"DomainName", "KmsKeyArn"} <= k for k in keys))
        self.assertTrue(any("DomainName" in k and "HostedZoneId" not in k for k in keys))


class SamConfigTest(unittest.TestCase):
    """samconfig.toml's environments: both deploy the template, on stacks of their own, with
    overrides that name real parameters and pass their constraints."""

    def test_default_and_prod_environments(self):
        if tomllib is None:
            self.skipTest("tomllib needs Python 3.11")
        config = tomllib.loads((ROOT / "samconfig.toml").read_text())
        self.assertLessEqual({"default", "prod"}, set(config))
        stacks = {env: config[env]["global"]["parameters"]["stack_name"] for env in ("default", "prod")}
        self.assertEqual(len(set(stacks.values())), 2, stacks)
        parameters = load_template()["Parameters"]
        for env in ("default", "prod"):
            deploy = config[env]["deploy"]["parameters"]
            self.assertEqual(deploy["capabilities"], "CAPABILITY_IAM", env)
            self.assertIs(deploy["confirm_changeset"], True, env)
            self.assertIs(config[env]["build"]["parameters"]["beta_features"], True, env)
            overrides = shlex.split(deploy.get("parameter_overrides", ""))
            for override in overrides:
                name, value = override.split("=", 1)
                with self.subTest(env=env, parameter=name):
                    spec = parameters[name]
                    self.assertNotIn(name, {"AdminKeySha256"}, "a NoEcho parameter in samconfig")
                    if "AllowedValues" in spec:
                        self.assertIn(value, [str(v) for v in spec["AllowedValues"]])
                    if "AllowedPattern" in spec:
                        self.assertRegex(value, spec["AllowedPattern"])
        prod = dict(o.split("=", 1) for o in shlex.split(config["prod"]["deploy"]["parameters"]["parameter_overrides"]))
        self.assertEqual(prod["LogLevel"], "warn")
        self.assertIn("AlarmEmail", prod)


if __name__ == "__main__":
    unittest.main()

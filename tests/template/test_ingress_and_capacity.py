"""The two deployment options of issue 12, on the SAM-transformed template as CloudFormation
deploys it, for every combination in combinations.py:

- Ingress=HttpApi (default): the HTTP API, its `$default` stage, three routes on two payload-v2
  integrations, and API Gateway's invoke permissions; no function URL. Ingress=FunctionUrl: a
  public function URL for the receiver and the admin API with both permissions a public URL
  needs, and no API Gateway resource, access log group or execute-api output at all. The URL
  outputs follow the mode; a custom domain needs the HTTP API (a rule).
- Capacity=OnDemand (default): every table pay-per-request, no provisioned throughput, no auto
  scaling. Capacity=Provisioned: every table and index provisioned at the minimums, with a
  read and a write scalable target (the min/max parameters) and a target-tracking policy each.

Lint (cfn-lint, `sam validate --lint`, checkov) of the same combinations: scripts/sam-check.sh.
"""

from __future__ import annotations

import unittest

from combinations import COMBINATIONS, resolve
from test_template import load_template, transform

HTTP_API_RESOURCES = {
    "HttpApi": "AWS::ApiGatewayV2::Api",
    "HttpApiStage": "AWS::ApiGatewayV2::Stage",
    "ReceiverIntegration": "AWS::ApiGatewayV2::Integration",
    "AdminIntegration": "AWS::ApiGatewayV2::Integration",
    "WebhookRoute": "AWS::ApiGatewayV2::Route",
    "HandshakeRoute": "AWS::ApiGatewayV2::Route",
    "AdminRoute": "AWS::ApiGatewayV2::Route",
    "ReceiverApiPermission": "AWS::Lambda::Permission",
    "AdminApiPermission": "AWS::Lambda::Permission",
    "ApiAccessLogGroup": "AWS::Logs::LogGroup",
}
FUNCTION_URL_RESOURCES = {
    f"{function}{suffix}": kind
    for function in ("ReceiverFunction", "AdminFunction")
    for suffix, kind in (
        ("Url", "AWS::Lambda::Url"),
        ("UrlPermission", "AWS::Lambda::Permission"),
        ("UrlInvokePermission", "AWS::Lambda::Permission"),
    )
}
EXECUTE_API = "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"

# Every table and index, as Application Auto Scaling names them.
SCALED = {
    "Sources": "table/${SourcesTable}",
    "Subscriptions": "table/${SubscriptionsTable}",
    "Events": "table/${EventsTable}",
    "EventsBySource": "table/${EventsTable}/index/by-source",
    "EventsUnenqueued": "table/${EventsTable}/index/unenqueued",
    "Attempts": "table/${AttemptsTable}",
}
TABLES = ("SourcesTable", "SubscriptionsTable", "EventsTable", "AttemptsTable")
MINIMUMS = {
    "ReadCapacityUnits": {"Ref": "CapacityReadUnitsMin"},
    "WriteCapacityUnits": {"Ref": "CapacityWriteUnitsMin"},
}


class Deployed(unittest.TestCase):
    """The raw and SAM-transformed template, and each combination as deployed."""

    @classmethod
    def setUpClass(cls):
        cls.raw = load_template()
        cls.transformed = transform(cls.raw)

    def each(self):
        for name, parameters in COMBINATIONS.items():
            with self.subTest(combination=name):
                yield parameters, resolve(self.transformed, parameters)


class IngressTest(Deployed):
    def test_both_modes_are_combined_with_the_other_options(self):
        modes = {p.get("Ingress", "HttpApi") for p in COMBINATIONS.values()}
        self.assertEqual(modes, {"HttpApi", "FunctionUrl"})
        url = [p for p in COMBINATIONS.values() if p.get("Ingress") == "FunctionUrl"]
        self.assertTrue(any("KmsKeyArn" in p for p in url))
        self.assertTrue(any("ReceiverReservedConcurrency" in p for p in url))

    def test_each_mode_has_exactly_its_resources(self):
        for parameters, deployed in self.each():
            resources = deployed["Resources"]
            url = parameters.get("Ingress") == "FunctionUrl"
            present, absent = (
                (FUNCTION_URL_RESOURCES, HTTP_API_RESOURCES)
                if url
                else (HTTP_API_RESOURCES, FUNCTION_URL_RESOURCES)
            )
            for name, kind in present.items():
                self.assertEqual(resources[name]["Type"], kind, name)
            self.assertFalse(set(absent) & set(resources))
            if url:
                api = [n for n, r in resources.items() if r["Type"].startswith("AWS::ApiGateway")]
                self.assertEqual(api, [], "no API Gateway charge behind function URLs")

    def test_function_urls_are_public_buffered_and_on_their_function(self):
        deployed = resolve(self.transformed, {"Ingress": "FunctionUrl"})["Resources"]
        for function in ("ReceiverFunction", "AdminFunction"):
            url = deployed[f"{function}Url"]["Properties"]
            self.assertEqual(
                url,
                {
                    "TargetFunctionArn": {"Fn::GetAtt": [function, "Arn"]},
                    "AuthType": "NONE",
                    "InvokeMode": "BUFFERED",
                },
            )
            self.assertEqual(
                deployed[f"{function}UrlPermission"]["Properties"],
                {
                    "Action": "lambda:InvokeFunctionUrl",
                    "FunctionName": {"Ref": function},
                    "Principal": "*",
                    "FunctionUrlAuthType": "NONE",
                },
            )
            # The second permission lets anyone invoke the function only through its URL.
            self.assertEqual(
                deployed[f"{function}UrlInvokePermission"]["Properties"],
                {
                    "Action": "lambda:InvokeFunction",
                    "FunctionName": {"Ref": function},
                    "Principal": "*",
                    "InvokedViaFunctionUrl": True,
                },
            )
        # The dispatcher stays private in both modes.
        self.assertNotIn("DispatcherFunctionUrl", deployed)

    def test_api_permissions_are_limited_to_the_api_and_the_functions_routes(self):
        deployed = resolve(self.transformed, {})["Resources"]
        prefix = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}"
        for name, function, path in (
            ("ReceiverApiPermission", "ReceiverFunction", "/*/*/webhooks/*"),
            ("AdminApiPermission", "AdminFunction", "/*/*/v1/*"),
        ):
            props = deployed[name]["Properties"]
            self.assertEqual(props["Principal"], "apigateway.amazonaws.com")
            self.assertEqual(props["Action"], "lambda:InvokeFunction")
            self.assertEqual(props["FunctionName"], {"Ref": function})
            self.assertEqual(props["SourceArn"], {"Fn::Sub": prefix + path})
        # Nothing else may invoke the receiver or the admin function in this mode.
        invokers = {
            n for n, r in deployed.items()
            if r["Type"] == "AWS::Lambda::Permission"
            and r["Properties"]["FunctionName"] in ({"Ref": "ReceiverFunction"}, {"Ref": "AdminFunction"})
        }
        self.assertEqual(invokers, {"ReceiverApiPermission", "AdminApiPermission"})

    def test_outputs_give_both_base_urls_in_both_modes(self):
        for parameters, deployed in self.each():
            outputs = deployed["Outputs"]
            ingest, admin = outputs["IngestUrl"]["Value"], outputs["AdminApiUrl"]["Value"]
            if parameters.get("Ingress") == "FunctionUrl":
                self.assertEqual(ingest, {"Fn::Sub": "${ReceiverFunctionUrl.FunctionUrl}webhooks/{source}"})
                self.assertEqual(admin, {"Fn::Sub": "${AdminFunctionUrl.FunctionUrl}v1"})
                self.assertNotIn("ExecuteApiUrl", outputs)
                self.assertNotIn("ApiDomainTarget", outputs)
            else:
                base = "https://${DomainName}" if "DomainName" in parameters else EXECUTE_API
                self.assertEqual(ingest, {"Fn::Sub": base + "/webhooks/{source}"})
                self.assertEqual(admin, {"Fn::Sub": base + "/v1"})
                self.assertEqual(outputs["ExecuteApiUrl"]["Value"], {"Fn::Sub": EXECUTE_API})

    def test_a_custom_domain_needs_the_http_api(self):
        rule = self.raw["Rules"]["CustomDomainNeedsHttpApi"]
        self.assertEqual(rule["RuleCondition"], {"Fn::Not": [{"Fn::Equals": [{"Ref": "DomainName"}, ""]}]})
        self.assertEqual(
            [a["Assert"] for a in rule["Assertions"]],
            [{"Fn::Equals": [{"Ref": "Ingress"}, "HttpApi"]}],
        )
        # And the linters know: the domain's resources exist only with the HTTP API.
        self.assertIn({"Condition": "UseHttpApi"}, self.raw["Conditions"]["HasCustomDomain"]["Fn::And"])

    def test_ingress_defaults_to_the_http_api(self):
        spec = self.raw["Parameters"]["Ingress"]
        self.assertEqual((spec["Default"], spec["AllowedValues"]), ("HttpApi", ["HttpApi", "FunctionUrl"]))


class CapacityTest(Deployed):
    def test_both_modes_are_combined_with_the_other_options(self):
        modes = {p.get("Capacity", "OnDemand") for p in COMBINATIONS.values()}
        self.assertEqual(modes, {"OnDemand", "Provisioned"})
        provisioned = [p for p in COMBINATIONS.values() if p.get("Capacity") == "Provisioned"]
        self.assertTrue(any(p.get("Ingress") == "FunctionUrl" for p in provisioned))
        self.assertTrue(any("KmsKeyArn" in p for p in provisioned))

    def test_tables_and_indexes_follow_the_mode(self):
        for parameters, deployed in self.each():
            resources = deployed["Resources"]
            provisioned = parameters.get("Capacity") == "Provisioned"
            for table in TABLES:
                props = resources[table]["Properties"]
                indexes = props.get("GlobalSecondaryIndexes", [])
                if provisioned:
                    self.assertEqual(props["BillingMode"], "PROVISIONED", table)
                    self.assertEqual(props["ProvisionedThroughput"], MINIMUMS, table)
                    for index in indexes:
                        self.assertEqual(index["ProvisionedThroughput"], MINIMUMS, index["IndexName"])
                else:
                    self.assertEqual(props["BillingMode"], "PAY_PER_REQUEST", table)
                    self.assertNotIn("ProvisionedThroughput", props, table)
                    for index in indexes:
                        self.assertNotIn("ProvisionedThroughput", index, index["IndexName"])
            scaling = {
                n for n, r in resources.items() if r["Type"].startswith("AWS::ApplicationAutoScaling::")
            }
            self.assertEqual(bool(scaling), provisioned)

    def test_every_table_and_index_scales_reads_and_writes(self):
        resources = resolve(self.transformed, {"Capacity": "Provisioned"})["Resources"]
        # Exactly the tables and indexes of the template: a new index needs its targets here.
        indexes = {
            f"{table}/{index['IndexName']}"
            for table in TABLES
            for index in resources[table]["Properties"].get("GlobalSecondaryIndexes", [])
        }
        scaled_indexes = {
            resource.replace("table/${", "").replace("}/index", "")
            for resource in SCALED.values() if "/index/" in resource
        }
        self.assertEqual(scaled_indexes, indexes)
        targets = {n for n, r in resources.items() if r["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"}
        self.assertEqual(len(targets), 2 * len(SCALED))
        for name, resource_id in SCALED.items():
            kind = "index" if "/index/" in resource_id else "table"
            for dimension in ("Read", "Write"):
                target = resources[f"{name}{dimension}Scaling"]["Properties"]
                self.assertEqual(
                    target,
                    {
                        "ServiceNamespace": "dynamodb",
                        "ResourceId": {"Fn::Sub": resource_id},
                        "ScalableDimension": f"dynamodb:{kind}:{dimension}CapacityUnits",
                        "MinCapacity": {"Ref": f"Capacity{dimension}UnitsMin"},
                        "MaxCapacity": {"Ref": f"Capacity{dimension}UnitsMax"},
                    },
                    f"{name}{dimension}",
                )
                policy = resources[f"{name}{dimension}ScalingPolicy"]["Properties"]
                self.assertEqual(policy["PolicyType"], "TargetTrackingScaling")
                self.assertEqual(policy["ScalingTargetId"], {"Ref": f"{name}{dimension}Scaling"})
                tracking = policy["TargetTrackingScalingPolicyConfiguration"]
                self.assertEqual(tracking["TargetValue"], {"Ref": "CapacityTargetUtilization"})
                self.assertEqual(
                    tracking["PredefinedMetricSpecification"],
                    {"PredefinedMetricType": f"DynamoDB{dimension}CapacityUtilization"},
                )

    def test_capacity_defaults_to_on_demand(self):
        parameters = self.raw["Parameters"]
        self.assertEqual(parameters["Capacity"]["Default"], "OnDemand")
        self.assertEqual(parameters["Capacity"]["AllowedValues"], ["OnDemand", "Provisioned"])
        for name in ("CapacityReadUnitsMin", "CapacityWriteUnitsMin"):
            self.assertGreaterEqual(parameters[name]["MinValue"], 1)


if __name__ == "__main__":
    unittest.main()

"""The parameter combinations template.yaml is checked with, and two ways to apply one.

- `resolve(template, parameters)`: the template (raw or SAM-transformed, as plain dicts) as
  CloudFormation would deploy it with those parameter values: conditions evaluated, resources
  and outputs of false conditions dropped, `Fn::If` chosen, `AWS::NoValue` removed. Refs to
  parameters stay refs, so tests compare wiring, not values.
- `render_text(text, combination)`: the template's text with the combination's values as the
  parameters' defaults, comments kept, for the linters that take no parameter values (checkov
  evaluates conditions with the defaults; cfn-lint evaluates every branch anyway). With the
  customer-managed key or the concurrency caps set, the render also drops the template's
  `checkov:skip` comments those settings answer, so checkov has to pass them on its own.

scripts/sam-check.sh writes the renders (`python3 tests/template/combinations.py DIR`) and
runs cfn-lint, `sam validate --lint` and checkov on each.
"""

from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path

# Values shaped like real ones (the parameters' AllowedPatterns check them).
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d"
DOMAIN = "hooks.example.com"
ZONE = "Z0123456789ABCDEFGHIJ"

DOMAIN_OPTIONS = {
    "no-domain": {},
    "domain": {"DomainName": DOMAIN, "CertificateArn": CERTIFICATE},
    "domain+zone": {"DomainName": DOMAIN, "CertificateArn": CERTIFICATE, "HostedZoneId": ZONE},
}
KMS_OPTIONS = {"aws-keys": {}, "cmk": {"KmsKeyArn": KMS_KEY}}
# The rest of the optional settings: all unset, or all set (the alarm topic exists only with an
# e-mail, so the key's use on it is checked there).
EXTRA_OPTIONS = {
    "defaults": {},
    "limits+alarms": {
        "ReceiverReservedConcurrency": "50",
        "DispatcherReservedConcurrency": "20",
        "AlarmEmail": "ops@example.com",
    },
}

# Ingress (API Gateway or function URLs) and Capacity (on-demand or provisioned with auto
# scaling). The defaults (HttpApi, OnDemand) run with every option above; the other modes with
# the key and extra options, without a custom domain (function URLs take none: a rule refuses
# it; the domain does not touch the tables).
INGRESS_OPTIONS = {"http-api": {}, "function-url": {"Ingress": "FunctionUrl"}}
CAPACITY_OPTIONS = {"on-demand": {}, "provisioned": {"Capacity": "Provisioned"}}

COMBINATIONS: dict[str, dict[str, str]] = {
    f"{d}_{k}_{e}": {**DOMAIN_OPTIONS[d], **KMS_OPTIONS[k], **EXTRA_OPTIONS[e]}
    for d, k, e in itertools.product(DOMAIN_OPTIONS, KMS_OPTIONS, EXTRA_OPTIONS)
}
COMBINATIONS |= {
    f"no-domain_{k}_{e}_{i}_{c}": {
        **KMS_OPTIONS[k],
        **EXTRA_OPTIONS[e],
        **INGRESS_OPTIONS[i],
        **CAPACITY_OPTIONS[c],
    }
    for k, e, i, c in itertools.product(KMS_OPTIONS, EXTRA_OPTIONS, INGRESS_OPTIONS, CAPACITY_OPTIONS)
    if (i, c) != ("http-api", "on-demand")
}

# The checkov findings a setting fixes, and the resources whose skip comment says so.
SKIPS_ANSWERED_BY = {
    "KmsKeyArn": ("CKV_AWS_119", "CKV_AWS_158", "CKV_AWS_27", "CKV_AWS_26"),
}
CONCURRENCY_SKIPS = {
    "ReceiverReservedConcurrency": "ReceiverFunction",
    "DispatcherReservedConcurrency": "DispatcherFunction",
}

NO_VALUE = {"Ref": "AWS::NoValue"}


def parameter_values(template: dict, overrides: dict[str, str]) -> dict[str, str]:
    """Every parameter's value as CloudFormation passes it to Ref: a string."""
    values = {
        name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()
    }
    unknown = set(overrides) - set(values)
    assert not unknown, f"not parameters of the template: {unknown}"
    return {**values, **overrides}


def evaluate_conditions(template: dict, values: dict[str, str]) -> dict[str, bool]:
    definitions = template.get("Conditions", {})
    results: dict[str, bool] = {}

    def value(node):
        if isinstance(node, dict) and set(node) == {"Ref"}:
            return values[node["Ref"]]
        if isinstance(node, (str, int, float)):
            return str(node)
        raise AssertionError(f"unsupported value in a condition: {node!r}")

    def truth(node) -> bool:
        (function, argument), = node.items()
        if function == "Condition":
            return condition(argument)
        if function == "Fn::Equals":
            return value(argument[0]) == value(argument[1])
        if function == "Fn::Not":
            return not truth(argument[0])
        if function == "Fn::And":
            return all(truth(a) for a in argument)
        if function == "Fn::Or":
            return any(truth(a) for a in argument)
        raise AssertionError(f"unsupported condition function {function}")

    def condition(name: str) -> bool:
        if name not in results:
            results[name] = truth(definitions[name])
        return results[name]

    for name in definitions:
        condition(name)
    return results


def resolve(template: dict, overrides: dict[str, str]) -> dict:
    """The template as deployed with `overrides` (see the module's docstring)."""
    conditions = evaluate_conditions(template, parameter_values(template, overrides))

    def walk(node):
        if isinstance(node, dict):
            if set(node) == {"Fn::If"}:
                name, if_true, if_false = node["Fn::If"]
                return walk(if_true if conditions[name] else if_false)
            out = {}
            for key, child in node.items():
                child = walk(child)
                if child != NO_VALUE:
                    out[key] = child
            return out
        if isinstance(node, list):
            return [c for c in (walk(c) for c in node) if c != NO_VALUE]
        return node

    resolved = dict(template)
    for section in ("Resources", "Outputs"):
        resolved[section] = {
            name: walk(entry)
            for name, entry in template.get(section, {}).items()
            if conditions.get(entry.get("Condition"), True)
        }
    return resolved


def render_text(text: str, combination: dict[str, str]) -> str:
    """template.yaml's text with `combination` as the parameters' defaults (see the docstring)."""
    for name, value in combination.items():
        # The parameter's block: from "  Name:" to the next parameter; its Default line.
        pattern = re.compile(rf"(\n  {name}:\n(?:    .*\n|\s*\n)*?    Default: ).*\n")
        text, count = pattern.subn(lambda m: m.group(1) + f'"{value}"\n', text, count=1)
        assert count == 1, f"no Default line for parameter {name}"
    answered = [c for p, checks in SKIPS_ANSWERED_BY.items() if p in combination for c in checks]
    if answered:
        text = re.sub(rf"\n *# checkov:skip=({'|'.join(answered)}):.*", "", text)
    for parameter, resource in CONCURRENCY_SKIPS.items():
        if parameter in combination:
            block = re.compile(rf"(\n  {resource}:\n(?:    #.*\n|    Type:.*\n)*?) *# checkov:skip=CKV_AWS_115:.*\n")
            text, count = block.subn(lambda m: m.group(1), text, count=1)
            assert count == 1, f"no CKV_AWS_115 skip on {resource}"
    return text


def main() -> None:
    """Writes one render per combination into the directory given, and lists them."""
    root = Path(__file__).resolve().parents[2]
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    text = (root / "template.yaml").read_text()
    for name, combination in COMBINATIONS.items():
        path = out / f"{name}.yaml"
        path.write_text(render_text(text, combination))
        print(path)


if __name__ == "__main__":
    main()

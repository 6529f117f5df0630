"""Prints "<LogicalId> <attribute>" for every DynamoDB table in a CloudFormation
template whose TimeToLiveSpecification is enabled, one per line.

The template stays the only list of TTL attributes: local/deploy-stack.sh maps
logical ids to table names through the stack and calls UpdateTimeToLive, which
the emulator needs because it ignores TimeToLiveSpecification.
Runs with local/.venv/bin/python (cfn-lint's decoder understands !Ref and co).
"""

import sys

from cfnlint.decode import decode


def main(path: str) -> int:
    template, errors = decode(path)
    if errors or template is None:
        for error in errors:
            print(f"{path}: {error}", file=sys.stderr)
        return 1
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::DynamoDB::Table":
            continue
        ttl = resource.get("Properties", {}).get("TimeToLiveSpecification") or {}
        enabled = ttl.get("Enabled")
        attribute = ttl.get("AttributeName")
        if enabled is True or str(enabled).lower() == "true":
            if not isinstance(attribute, str):
                print(f"{logical_id}: TTL AttributeName must be a literal", file=sys.stderr)
                return 1
            print(logical_id, attribute)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

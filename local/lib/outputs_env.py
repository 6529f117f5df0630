"""Reads `aws cloudformation describe-stacks` JSON on stdin and prints the first
stack's outputs as sorted KEY=value lines, the key in SCREAMING_SNAKE_CASE
(SignalsDlqName -> SIGNALS_DLQ_NAME)."""

import json
import re
import sys


def screaming_snake(name: str) -> str:
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).upper()


def main() -> int:
    stacks = json.load(sys.stdin).get("Stacks") or []
    if not stacks:
        print("no stack in describe-stacks output", file=sys.stderr)
        return 1
    lines = {}
    for output in stacks[0].get("Outputs") or []:
        value = str(output["OutputValue"])
        if "\n" in value:
            print(f"output {output['OutputKey']} spans lines", file=sys.stderr)
            return 1
        lines[screaming_snake(output["OutputKey"])] = value
    for key in sorted(lines):
        print(f"{key}={lines[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

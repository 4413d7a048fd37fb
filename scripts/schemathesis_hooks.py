"""Schemathesis hooks for scripts/schemathesis.sh.

A label's criteria hold at most `x-max-conditions` conditions in all (the document says
so on the criteria schema): a count JSON Schema cannot express, so a body valid by the
schema but over it would be refused (422) as it should. Such bodies are not generated.
"""

import os

import schemathesis

MAX_CONDITIONS = int(os.environ["CUSTODIAN_MAX_CONDITIONS"])


def conditions(node):
    """How many conditions criteria hold, counted as the server counts them."""
    if isinstance(node, dict):
        for combinator in ("and", "or"):
            if combinator in node:
                items = node[combinator]
                return sum(conditions(i) for i in items) if isinstance(items, list) else 0
        return 1
    return 0


@schemathesis.hook
def filter_case(context, case):
    body = case.body
    if isinstance(body, dict) and "criteria" in body:
        return conditions(body["criteria"]) <= MAX_CONDITIONS
    return True

"""Schemathesis hooks for scripts/schemathesis.sh.

Two limits the document states outside JSON Schema, so that a body valid by the schema
but over them would be refused as it should; such bodies are not generated:

- a label's criteria hold at most `x-max-conditions` conditions in all (a count JSON
  Schema cannot express);
- text limits are in bytes of UTF-8 (`x-max-bytes` beside each field's `maxLength`,
  which counts characters): a string of `maxLength` characters may be longer in bytes;
- a new token's `expires_at` is in the future (`x-future` on the field): a date-time of
  the past is refused, as it should be;
- a Google Workspace connection's `google_workspace` holds a service account key, an RSA
  key that Google signed for and that no schema can generate: every generated one is
  refused, as it should be. Those bodies are left to the integration tests
  (tests/it/google_workspace.rs), which use a key the fake Google verifies;
- a SCIM filter (the host lists' `idp_filter`, an `end_user_idp_filter` condition's
  value) has a grammar (RFC 7644 §3.4.2.2) that no JSON Schema states: almost every
  generated string is refused with the parser's error, as it should be. Requests that
  hold one are left to the integration tests (tests/it/idp_filters.rs);
- automatic labels of one connection (`POST /labels/automatic` with a `connection`) need
  the name of a connection that exists, which no schema can state: every generated one
  is refused as unknown, as it should be. Those are left to tests/it/automatic_labels.rs.
"""

import datetime
import json
import os

import schemathesis

MAX_CONDITIONS = int(os.environ["CUSTODIAN_MAX_CONDITIONS"])
# {"hostname": 1024, ...}: every property of the document with an `x-max-bytes`.
MAX_BYTES = json.loads(os.environ["CUSTODIAN_MAX_BYTES"])


def conditions(node):
    """How many conditions criteria hold, counted as the server counts them."""
    if isinstance(node, dict):
        for combinator in ("and", "or"):
            if combinator in node:
                items = node[combinator]
                return sum(conditions(i) for i in items) if isinstance(items, list) else 0
        return 1
    return 0


def within_byte_limits(node):
    """Whether every string of a body is within its field's limit in bytes."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and key in MAX_BYTES:
                if len(value.encode("utf-8", "surrogatepass")) > MAX_BYTES[key]:
                    return False
            elif not within_byte_limits(value):
                return False
    elif isinstance(node, list):
        return all(within_byte_limits(item) for item in node)
    return True


def holds_filter_condition(node):
    """Whether criteria hold an end_user_idp_filter condition anywhere."""
    if isinstance(node, dict):
        if node.get("vital") == "end_user_idp_filter":
            return True
        return any(holds_filter_condition(v) for v in node.values())
    if isinstance(node, list):
        return any(holds_filter_condition(i) for i in node)
    return False


def in_the_past(value):
    """Whether an RFC 3339 date-time is not in the future (unparsable ones are not)."""
    try:
        when = datetime.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    if when.tzinfo is None:
        return False
    return when <= datetime.datetime.now(datetime.timezone.utc)


@schemathesis.hook
def filter_case(context, case):
    body = case.body
    if isinstance(case.query, dict) and case.query.get("idp_filter") not in (None, ""):
        return False
    if isinstance(body, dict) and "criteria" in body and conditions(body["criteria"]) > MAX_CONDITIONS:
        return False
    if isinstance(body, dict) and holds_filter_condition(body.get("criteria")):
        return False
    if isinstance(body, dict) and isinstance(body.get("expires_at"), str) and in_the_past(body["expires_at"]):
        return False
    if isinstance(body, dict) and (body.get("google_workspace") is not None or body.get("kind") == "google_workspace"):
        return False
    path = getattr(case, "path", None) or getattr(getattr(case, "operation", None), "path", "")
    if str(path).endswith("/labels/automatic") and isinstance(body, dict) and body.get("connection") is not None:
        return False
    return within_byte_limits(body)

#!/usr/bin/env bash
# Runs Schemathesis (property-based API testing from the OpenAPI document) against a
# freshly started Custodian server holding some data: every request it derives from
# /api/openapi.json must be answered as the document says (`--checks all`: no 5xx,
# documented statuses, content types and bodies, valid requests accepted, invalid ones
# refused, ...).
#
# Usage:
#   scripts/schemathesis.sh [PATH_TO_CUSTODIAN_BINARY]     (default: target/release/custodian)
#
# Environment:
#   SCHEMATHESIS_DATABASE_URL  database to serve from (e.g. postgres://user:pw@127.0.0.1/db);
#                              default: a fresh SQLite file in a temporary directory.
#   SCHEMATHESIS_VENV          virtualenv holding Schemathesis (default: .venv-schemathesis at
#                              the repository root); created and filled when missing.
#   SCHEMATHESIS_MAX_TIME      seconds of generation (default 120).
#   SCHEMATHESIS_WORKERS       concurrent workers (default 1: with more, CPython 3.11 has failed
#                              inside Hypothesis with "AST constructor recursion depth mismatch").
#   SCHEMATHESIS_SEED          a seed, to replay a run.
#   SCHEMATHESIS_KEEP=1        keep the temporary directory (database, server log, reports).
#
# The server runs with --rate-limit-per-token 0: Schemathesis sends thousands of requests
# a minute with one token, and 429s would hide the answers under test.
#
# Exit status: 0 when Schemathesis reports no failure, 1 when it does, 2 on a set-up error.

set -euo pipefail

# Schemathesis with every dependency pinned: a new release adds checks, which must not
# break CI unannounced. To move on, `pip install schemathesis` into a scratch venv, paste
# its `pip freeze` here, and triage what the new version reports.
PINNED_PACKAGES="
anyio==4.16.0
certifi==2026.10.19.post1
charset-normalizer==3.5.3
click==8.5.1
graphql-core==3.3.2
harfile==0.6.0
hypothesis==6.170.17
hypothesis-graphql==0.13.5
idna==3.20
iniconfig==2.3.1
jsonschema_rs==0.60.3
markdown-it-py==4.3.0
MarkupSafe==3.0.4
mdurl==0.1.2
packaging==26.4
pluggy==1.7.0
Pygments==2.21.0
pyrate-limiter==4.5.1
pytest==9.2.0
PyYAML==6.0.4
requests==2.34.2
rich==15.0.0
schemathesis==4.32.5
sortedcontainers==2.4.0
typing_extensions==4.16.0
urllib3==2.8.0
Werkzeug==3.1.9
"
SCHEMATHESIS_VERSION=4.32.5

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPT_NAME=schemathesis
source "$REPO/scripts/lib/fresh-server.sh"
use_binary "${1:-$REPO/target/release/custodian}"
VENV="${SCHEMATHESIS_VENV:-$REPO/.venv-schemathesis}"
MAX_TIME="${SCHEMATHESIS_MAX_TIME:-120}"
WORKERS="${SCHEMATHESIS_WORKERS:-1}"
API="/api/v1/fleet"

# --- Schemathesis' virtualenv -------------------------------------------------------------
ensure_venv "$VENV" "$PINNED_PACKAGES" schemathesis

# --- A fresh server ---------------------------------------------------------------------
# An admin: every operation, writes and the webhook deliveries included, is reachable.
start_fresh_server schemathesis admin "${SCHEMATHESIS_DATABASE_URL:-}" "${SCHEMATHESIS_KEEP:-}" \
    --rate-limit-per-token 0

# --- Data -------------------------------------------------------------------------------
# IdP users and a group (SCIM), hosts linked to them or not, a label on the group: the
# operations then answer real bodies, not only empty lists and 404s.
send() { # METHOD PATH BODY [CONTENT_TYPE]
    local code
    code="$(curl -s -o "$WORK/last.json" -w '%{http_code}' -X "$1" "$BASE$2" \
        -H "Authorization: Bearer $TOKEN" -H "Content-Type: ${4:-application/json}" --data-binary "$3")" ||
        die "$1 $2: no answer"
    [[ "$code" == 2* ]] || { cat "$WORK/last.json" >&2; die "$1 $2 answered $code while seeding"; }
}
scim_user() { # USERNAME GIVEN FAMILY DEPARTMENT
    send POST "$API/scim/Users" "{\"schemas\": [\"urn:ietf:params:scim:schemas:core:2.0:User\",
        \"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\"], \"userName\": \"$1\",
        \"name\": {\"givenName\": \"$2\", \"familyName\": \"$3\"}, \"emails\": [{\"value\": \"$1\", \"primary\": true}],
        \"active\": true, \"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\": {\"department\": \"$4\"}}" \
        application/scim+json
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/last.json"
}
log "seeding users, a group, hosts and a label"
jane="$(scim_user jane@example.com Jane Doe Engineering)"
scim_user john@example.com John Roe Sales >/dev/null
send POST "$API/scim/Groups" "{\"schemas\": [\"urn:ietf:params:scim:schemas:core:2.0:Group\"],
    \"displayName\": \"Backend\", \"members\": [{\"value\": \"$jane\"}]}" application/scim+json
send POST "$API/hosts" '{"uuid": "host-jane", "hostname": "jane-mbp", "hardware_serial": "C02JANE", "platform": "darwin",
    "device_mapping": [{"email": "jane@example.com", "source": "mdm_idp_accounts"}]}'
send POST "$API/hosts/batch" '{"hosts": [
    {"uuid": "host-john", "hostname": "john-xps", "platform": "windows",
     "device_mapping": [{"email": "john@example.com", "source": "idp"}, {"email": "j@home.example", "source": "custom"}]},
    {"uuid": "host-waiting", "hostname": "spare", "device_mapping": [{"email": "nobody@example.com", "source": "idp"}]},
    {"uuid": "host-bare", "hostname": "lab-01", "seen_time": "2026-01-01T00:00:00Z"}]}'
send POST "$API/labels" '{"name": "Backend laptops", "description": "Backend group",
    "criteria": {"or": [{"vital": "end_user_idp_group", "value": "Backend"},
                        {"vital": "end_user_idp_department", "value": "Engineering"}]}}'

# --- Schemathesis -------------------------------------------------------------------------
# The hooks read the limits the document states outside JSON Schema from the document.
# One walk of the document finds both: the filter's condition limit (x-max-conditions),
# and the text limits in bytes by field name (x-max-bytes; one limit per name, as the
# hooks key them so: where two fields of one name differ, the smaller, which keeps the
# other too: a criteria condition's `value` is 1,024 bytes for a group or department and
# 4,096 for a SCIM filter, and filter conditions are not generated). It prints them on
# two lines.
LIMITS="$(curl -s "$BASE/api/openapi.json" | python3 -c '
import json, sys
conditions, max_bytes = [], {}
def walk(v):
    if isinstance(v, dict):
        if "x-max-conditions" in v:
            conditions.append(v["x-max-conditions"])
        for name, schema in (v.get("properties") or {}).items():
            if isinstance(schema, dict) and "x-max-bytes" in schema:
                limit = schema["x-max-bytes"]
                max_bytes[name] = min(max_bytes.get(name, limit), limit)
        for x in v.values():
            walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)
walk(json.load(sys.stdin))
if not conditions:
    sys.exit("no x-max-conditions")
if not max_bytes:
    sys.exit("no x-max-bytes")
print(conditions[0])
print(json.dumps(max_bytes))')" || die "the document states no x-max-conditions, or no x-max-bytes"
CUSTODIAN_MAX_CONDITIONS="$(sed -n 1p <<<"$LIMITS")"
CUSTODIAN_MAX_BYTES="$(sed -n 2p <<<"$LIMITS")"
export CUSTODIAN_MAX_CONDITIONS CUSTODIAN_MAX_BYTES
export PYTHONPATH="$REPO/scripts${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=schemathesis_hooks
log "schemathesis $SCHEMATHESIS_VERSION on $BASE/api/openapi.json (--checks all, --max-time $MAX_TIME)"
args=(run "$BASE/api/openapi.json" --checks all --max-time "$MAX_TIME" --workers "$WORKERS"
    --header "Authorization: Bearer $TOKEN" --report junit --report-dir "$WORK/report"
    --generation-database none --no-color)
[[ -n "${SCHEMATHESIS_SEED:-}" ]] && args+=(--seed "$SCHEMATHESIS_SEED")
rc=0
# From the temporary directory: whatever it writes stays out of the repository. With
# pipefail, the status is Schemathesis' (tee does not fail).
(cd "$WORK" && "$VENV/bin/schemathesis" "${args[@]}") </dev/null | tee "$WORK/schemathesis.log" || rc=$?

# The cases generated, from the summary of the text output ("Test cases: N generated, ...").
cases="$(grep -Eo '[0-9]+ generated' "$WORK/schemathesis.log" | tail -n 1 | grep -Eo '[0-9]+' || true)"
log "test cases generated: ${cases:-unknown}"
if [[ $rc != 0 ]]; then
    server_log_errors
    log "schemathesis: FAIL (exit $rc)"
    exit 1
fi
log "schemathesis: PASS"

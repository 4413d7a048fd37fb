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
BIN="${1:-$REPO/target/release/custodian}"
VENV="${SCHEMATHESIS_VENV:-$REPO/.venv-schemathesis}"
MAX_TIME="${SCHEMATHESIS_MAX_TIME:-120}"
WORKERS="${SCHEMATHESIS_WORKERS:-1}"
API="/api/v1/fleet"

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'schemathesis: %s\n' "$*" >&2
    exit 2
}

[[ -x "$BIN" ]] || die "no custodian binary at '$BIN' (build it with: cargo build --release -p custodian)"
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required"

# --- Schemathesis' virtualenv -------------------------------------------------------------
# (Re)installed when missing or when it does not hold exactly the pinned packages.
pinned() { grep -v '^$' <<<"$PINNED_PACKAGES" | tr 'A-Z_' 'a-z-' | sort; }
venv_ok() {
    [[ -x "$VENV/bin/schemathesis" ]] || return 1
    local frozen
    frozen="$("$VENV/bin/pip" freeze --disable-pip-version-check 2>/dev/null | tr 'A-Z_' 'a-z-' | sort)" || return 1
    [[ "$frozen" == "$(pinned)" ]]
}
if ! venv_ok; then
    log "installing Schemathesis $SCHEMATHESIS_VERSION into $VENV"
    python3 -m venv --clear "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    # shellcheck disable=SC2086 # one package==version per word
    "$VENV/bin/pip" install --quiet --disable-pip-version-check $PINNED_PACKAGES ||
        die "pip install of Schemathesis failed"
fi

# --- A fresh server ---------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/custodian-schemathesis.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    # On a shared database, revoke the operator (and its token) made for this run.
    if [[ -n "${SCHEMATHESIS_DATABASE_URL:-}" && -n "${TOKEN:-}" ]]; then
        "$BIN" user delete "$TOKEN_NAME" --database "$DATABASE" >/dev/null 2>&1 || true
    fi
    if [[ "${SCHEMATHESIS_KEEP:-}" == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

if [[ -n "${SCHEMATHESIS_DATABASE_URL:-}" ]]; then
    DATABASE="$SCHEMATHESIS_DATABASE_URL"
    # A shared database may already hold an operator of that name.
    TOKEN_NAME="schemathesis-$(date +%s)-$$"
else
    DATABASE="sqlite://$WORK/s.db"
    TOKEN_NAME="schemathesis"
fi

# A free port: bind port 0, read what the kernel chose, release it.
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"

# `migrate` creates the database (no other command but `serve` does).
"$BIN" migrate --database "$DATABASE" 2>"$WORK/migrate.log" ||
    { cat "$WORK/migrate.log" >&2; die "could not migrate $DATABASE"; }
# `user create --api-only` prints the token, and only the token, on stdout. An admin:
# every operation, writes and the webhook deliveries included, is reachable.
TOKEN="$("$BIN" user create --api-only --name "$TOKEN_NAME" --role admin --database "$DATABASE" 2>"$WORK/user-create.log")" ||
    { cat "$WORK/user-create.log" >&2; die "could not create the admin token"; }
[[ -n "$TOKEN" ]] || die "user create printed no token"

log "starting $BIN on $BASE"
CUSTODIAN_LOG="${CUSTODIAN_LOG:-info,sqlx=warn}" \
    "$BIN" serve --listen "127.0.0.1:$PORT" --database "$DATABASE" --rate-limit-per-token 0 \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

ready=0
for _ in $(seq 300); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        cat "$WORK/server.log" >&2
        die "the server exited before it was ready"
    fi
    if [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/healthz" || true)" == 200 ]]; then
        ready=1
        break
    fi
    sleep 0.1
done
[[ $ready == 1 ]] || { cat "$WORK/server.log" >&2; die "the server did not answer GET /healthz within 30 s"; }

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
# The hooks read the one limit the document states outside JSON Schema from the document.
CUSTODIAN_MAX_CONDITIONS="$(curl -s "$BASE/api/openapi.json" | python3 -c '
import json, sys
found = []
def walk(v):
    if isinstance(v, dict):
        if "x-max-conditions" in v:
            found.append(v["x-max-conditions"])
        for x in v.values():
            walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)
walk(json.load(sys.stdin))
print(found[0])')" || die "the document states no x-max-conditions"
export CUSTODIAN_MAX_CONDITIONS
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
    if grep -qiE 'panic|error' "$WORK/server.log"; then
        log "server log errors:"
        grep -iE 'panic|error' "$WORK/server.log" | tail -n 40 >&2
    fi
    log "schemathesis: FAIL (exit $rc)"
    exit 1
fi
log "schemathesis: PASS"

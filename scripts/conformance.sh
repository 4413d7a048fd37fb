#!/usr/bin/env bash
# Runs the two independent SCIM 2.0 conformance checkers against a freshly started
# Custodian server:
#
#   * scim2-tester (through `scim2 test` of the scim2-cli package), which validates every
#     response against the server's own /Schemas, and
#   * scim-sanity (`scim-sanity probe --strict`), a CRUD lifecycle probe.
#
# Usage:
#   scripts/conformance.sh [PATH_TO_CUSTODIAN_BINARY]      (default: target/release/custodian)
#
# Environment:
#   CONFORMANCE_DATABASE_URL  database to serve from (e.g. postgres://user:pw@127.0.0.1/db);
#                             default: a fresh SQLite file in a temporary directory.
#   CONFORMANCE_VENV          virtualenv holding the checkers (default: .venv-conformance at
#                             the repository root); created and filled when missing.
#   CONFORMANCE_VERBOSE=1     also print the data behind each failed scim2-tester check.
#   CONFORMANCE_KEEP=1        keep the temporary directory (database, server log).
#   CONFORMANCE_TIMEOUT       seconds allowed to each checker (default 600).
#
# Exit status: 0 when both checkers pass, 1 when either fails, 2 on a set-up error.

set -euo pipefail

# The checkers, with every dependency pinned (scim2-models and scim2-client hold much of
# scim2-tester's validation): a new release may add checks, which must not break CI
# unannounced. To move on, install scim2-cli and scim-sanity into a scratch venv, paste its
# `pip freeze` here, and triage what the new versions report.
PINNED_PACKAGES="
annotated-types==0.8.0
anyio==4.16.0
click==8.5.1
colorama==0.4.6
dnspython==2.9.2
docutils==0.23
email-validator==2.4.0
h11==0.16.0
httpcore2==2.16.2
httpx2==2.16.2
idna==3.20
lark==1.3.1
pydanclick==0.5.1
pydantic==2.14.4
pydantic_core==2.50.5
Pygments==2.21.0
scim-sanity==0.7.4
scim2-cli==0.6.0
scim2-client==0.13.2
scim2-models==0.12.3
scim2-tester==0.5.2
sphinx-click-rst-to-ansi-formatter==0.2.0
truststore==0.10.5
typing-inspection==0.4.5
typing_extensions==4.16.0
"
SCIM2_CLI_VERSION=0.6.0
SCIM2_TESTER_VERSION=0.5.2
SCIM_SANITY_VERSION=0.7.4

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-$REPO/target/release/custodian}"
VENV="${CONFORMANCE_VENV:-$REPO/.venv-conformance}"
CHECK_TIMEOUT="${CONFORMANCE_TIMEOUT:-600}"
MOUNT="/api/v1/fleet/scim"

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'conformance: %s\n' "$*" >&2
    exit 2
}

[[ -x "$BIN" ]] || die "no custodian binary at '$BIN' (build it with: cargo build --release -p custodian)"
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required"

# --- The checkers' virtualenv -------------------------------------------------------------
# (Re)installed when missing or when it does not hold exactly the pinned packages.
pinned() { grep -v '^$' <<<"$PINNED_PACKAGES" | tr 'A-Z_' 'a-z-' | sort; }
venv_ok() {
    [[ -x "$VENV/bin/scim2" && -x "$VENV/bin/scim-sanity" ]] || return 1
    local frozen
    frozen="$("$VENV/bin/pip" freeze --disable-pip-version-check 2>/dev/null | tr 'A-Z_' 'a-z-' | sort)" || return 1
    [[ "$frozen" == "$(pinned)" ]]
}
if ! venv_ok; then
    log "installing the conformance checkers into $VENV"
    python3 -m venv --clear "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    # shellcheck disable=SC2086 # one package==version per word
    "$VENV/bin/pip" install --quiet --disable-pip-version-check $PINNED_PACKAGES ||
        die "pip install of the checkers failed"
fi

# --- A fresh server ---------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/custodian-conformance.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        # Graceful shutdown flushes the request history; give it a few seconds.
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    # On a shared database, revoke the operator (and its token) made for this run.
    if [[ -n "${CONFORMANCE_DATABASE_URL:-}" && -n "${TOKEN:-}" ]]; then
        "$BIN" user delete "$TOKEN_NAME" --database "$DATABASE" >/dev/null 2>&1 || true
    fi
    if [[ "${CONFORMANCE_KEEP:-}" == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

if [[ -n "${CONFORMANCE_DATABASE_URL:-}" ]]; then
    DATABASE="$CONFORMANCE_DATABASE_URL"
    # A shared database may already hold an operator named 'conformance'.
    TOKEN_NAME="conformance-$(date +%s)-$$"
else
    DATABASE="sqlite://$WORK/c.db"
    TOKEN_NAME="conformance"
fi

# A free port: bind port 0, read what the kernel chose, release it.
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
SCIM_URL="$BASE$MOUNT"

# `migrate` creates the database (no other command but `serve` does); `user create
# --api-only` prints the token, and only the token, on stdout.
"$BIN" migrate --database "$DATABASE" 2>"$WORK/migrate.log" ||
    { cat "$WORK/migrate.log" >&2; die "could not migrate $DATABASE"; }
TOKEN="$("$BIN" user create --api-only --name "$TOKEN_NAME" --role maintainer --database "$DATABASE" 2>"$WORK/user-create.log")" ||
    { cat "$WORK/user-create.log" >&2; die "could not create the maintainer token"; }
[[ -n "$TOKEN" ]] || die "user create printed no token"

log "starting $BIN on $BASE"
CUSTODIAN_LOG="${CUSTODIAN_LOG:-info,sqlx=warn}" \
    "$BIN" serve --listen "127.0.0.1:$PORT" --database "$DATABASE" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

# Wait (at most 30 s) until GET /healthz answers 200.
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
if [[ $ready != 1 ]]; then
    cat "$WORK/server.log" >&2
    die "the server did not answer GET /healthz within 30 s"
fi

# --- The checkers -------------------------------------------------------------------------
# Each one's failure is recorded, not fatal: both always run.
status=0

log "scim2-tester $SCIM2_TESTER_VERSION (scim2 test, scim2-cli $SCIM2_CLI_VERSION) on $SCIM_URL"
verbose=()
[[ "${CONFORMANCE_VERBOSE:-}" == 1 ]] && verbose=(--verbose)
scim2_rc=0
SCIM_CLI_URL="$SCIM_URL" SCIM_CLI_HEADERS="Authorization: Bearer $TOKEN" \
    timeout "$CHECK_TIMEOUT" "$VENV/bin/scim2" test "${verbose[@]}" </dev/null || scim2_rc=$?

log "scim-sanity $SCIM_SANITY_VERSION (probe --strict) on $SCIM_URL"
sanity_rc=0
timeout "$CHECK_TIMEOUT" "$VENV/bin/scim-sanity" probe "$SCIM_URL" \
    --token "$TOKEN" --strict --i-accept-side-effects </dev/null || sanity_rc=$?

# --- Verdict ------------------------------------------------------------------------------
if [[ $scim2_rc == 0 ]]; then log "scim2-tester: PASS"; else log "scim2-tester: FAIL (exit $scim2_rc)"; status=1; fi
if [[ $sanity_rc == 0 ]]; then log "scim-sanity: PASS"; else log "scim-sanity: FAIL (exit $sanity_rc)"; status=1; fi
if [[ $status != 0 ]]; then
    # The server's own view of the run: errors it logged (5xx causes, panics).
    if grep -qiE 'error|panic' "$WORK/server.log"; then
        log "server log errors:"
        grep -iE 'error|panic' "$WORK/server.log" | tail -n 40 >&2
    fi
fi
exit $status

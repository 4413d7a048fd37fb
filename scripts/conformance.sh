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
#   scripts/conformance.sh --install      only (re)creates the venv, e.g. for the peer of
#                                         `custodian-bench scim`
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
#
# scim2-server is no checker: it is the peer `custodian-bench scim` measures against (an
# in-memory SCIM server of the same project, whose dependencies are all pinned here
# already), kept in this venv so that one pinned list serves both.
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
scim2-server==0.8.3
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
SCRIPT_NAME=conformance
source "$REPO/scripts/lib/fresh-server.sh"
VENV="${CONFORMANCE_VENV:-$REPO/.venv-conformance}"
if [[ "${1:-}" == "--install" ]]; then
    ensure_venv "$VENV" "$PINNED_PACKAGES" scim2 scim-sanity scim2-server
    log "$VENV holds the pinned checkers and scim2-server"
    exit 0
fi
use_binary "${1:-$REPO/target/release/custodian}"
CHECK_TIMEOUT="${CONFORMANCE_TIMEOUT:-600}"
MOUNT="/api/v1/fleet/scim"

# --- The checkers' virtualenv -------------------------------------------------------------
ensure_venv "$VENV" "$PINNED_PACKAGES" scim2 scim-sanity scim2-server

# --- A fresh server ---------------------------------------------------------------------
start_fresh_server conformance maintainer "${CONFORMANCE_DATABASE_URL:-}" "${CONFORMANCE_KEEP:-}"
SCIM_URL="$BASE$MOUNT"

# --- The checkers -------------------------------------------------------------------------
# Both checkers run twice: with the operator's token (which writes to the connection
# `default`, as after an upgrade) and with a new connection's own SCIM-only token (an
# empty namespace of its own). Each failure is recorded, not fatal: every run happens.
status=0
verdicts=()

run_checkers() {
    local token="$1" label="$2"
    log "[$label] scim2-tester $SCIM2_TESTER_VERSION (scim2 test, scim2-cli $SCIM2_CLI_VERSION) on $SCIM_URL"
    local verbose=()
    [[ "${CONFORMANCE_VERBOSE:-}" == 1 ]] && verbose=(--verbose)
    local scim2_rc=0
    SCIM_CLI_URL="$SCIM_URL" SCIM_CLI_HEADERS="Authorization: Bearer $token" \
        timeout "$CHECK_TIMEOUT" "$VENV/bin/scim2" test "${verbose[@]}" </dev/null || scim2_rc=$?

    log "[$label] scim-sanity $SCIM_SANITY_VERSION (probe --strict) on $SCIM_URL"
    # scim-sanity expects 200 from every group PATCH. RFC 7644 §3.5.2 lets a server answer
    # 204 No Content instead, and Custodian does for a group PATCH that asks for no
    # attributes (so that a membership change never answers every member; Okta and Entra
    # document 204). Those three checks, failing with "got 204" and nothing else, are the
    # one accepted deviation; any other failure or error fails the run.
    local sanity_rc=0
    local sanity_json="$WORK/scim-sanity-$label.json"
    timeout "$CHECK_TIMEOUT" "$VENV/bin/scim-sanity" probe "$SCIM_URL" \
        --token "$token" --strict --i-accept-side-effects --json-output </dev/null >"$sanity_json" || true
    "$VENV/bin/python" - "$sanity_json" <<'PY' || sanity_rc=$?
import json, sys
try:
    report = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    sys.exit(f"scim-sanity wrote no report: {e}")
ACCEPTED = {"PATCH /Groups/{id}", "PATCH /Groups/{id} add member", "PATCH /Groups/{id} remove members"}
counts, refused = {}, []
for r in report["results"]:
    counts[r["status"]] = counts.get(r["status"], 0) + 1
    if r["status"] in ("fail", "error"):
        accepted = r["name"] in ACCEPTED and "got 204" in r.get("message", "")
        print(f"  {'accepted (204 on a group PATCH, RFC 7644 §3.5.2)' if accepted else r['status'].upper()}: "
              f"{r['name']}: {r.get('message', '')}")
        if not accepted:
            refused.append(r["name"])
print("  " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
sys.exit(1 if refused or not counts.get("pass") else 0)
PY
    if [[ $scim2_rc == 0 ]]; then verdicts+=("[$label] scim2-tester: PASS"); else verdicts+=("[$label] scim2-tester: FAIL (exit $scim2_rc)"); status=1; fi
    if [[ $sanity_rc == 0 ]]; then verdicts+=("[$label] scim-sanity: PASS"); else verdicts+=("[$label] scim-sanity: FAIL (exit $sanity_rc)"); status=1; fi
}

run_checkers "$TOKEN" "operator token"
CONNECTION_TOKEN="$("$BIN" idp add "conformance-$$-$(date +%s)" --database "$DATABASE" 2>/dev/null)"
[[ -n "$CONNECTION_TOKEN" ]] || die "idp add printed no token"
run_checkers "$CONNECTION_TOKEN" "connection token"

# --- Verdict ------------------------------------------------------------------------------
for verdict in "${verdicts[@]}"; do log "$verdict"; done
if [[ $status != 0 ]]; then server_log_errors; fi
exit $status

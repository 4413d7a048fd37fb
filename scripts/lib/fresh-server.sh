# What scripts/conformance.sh and scripts/schemathesis.sh share (sourced, not run): their
# messages, the checks of the binary and tools, a virtualenv holding exactly a pinned
# package list, and a fresh Custodian server with a token. The sourcing script sets
# SCRIPT_NAME (the prefix of its errors) first.

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2
    exit 2
}

# use_binary PATH: sets BIN to PATH made absolute, after checking it and the tools the
# scripts call.
use_binary() {
    [[ -x "$1" ]] || die "no custodian binary at '$1' (build it with: cargo build --release -p custodian)"
    BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
    command -v curl >/dev/null || die "curl is required"
    command -v python3 >/dev/null || die "python3 is required"
}

# ensure_venv VENV PACKAGES EXECUTABLE...: (re)creates VENV unless it holds each
# EXECUTABLE and exactly PACKAGES (one name==version per line).
ensure_venv() {
    local venv="$1" packages="$2"
    shift 2
    local wanted frozen exe ok=1
    wanted="$(grep -v '^$' <<<"$packages" | tr 'A-Z_' 'a-z-' | sort)"
    for exe in "$@"; do [[ -x "$venv/bin/$exe" ]] || ok=0; done
    if [[ $ok == 1 ]]; then
        frozen="$("$venv/bin/pip" freeze --disable-pip-version-check 2>/dev/null | tr 'A-Z_' 'a-z-' | sort)" || ok=0
        [[ "$frozen" == "$wanted" ]] || ok=0
    fi
    if [[ $ok == 0 ]]; then
        log "installing $* into $venv"
        python3 -m venv --clear "$venv" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
        # shellcheck disable=SC2086 # one package==version per word
        "$venv/bin/pip" install --quiet --disable-pip-version-check $packages || die "pip install into $venv failed"
    fi
}

# start_fresh_server NAME ROLE SHARED_DATABASE_URL KEEP [SERVE_ARG...]
#
# Serves BIN on a free port of 127.0.0.1, on SHARED_DATABASE_URL when it is set (the
# operator made for the run is deleted afterwards) or else a new SQLite database in a
# temporary folder, with an API-only operator of ROLE. Sets WORK (the folder: database,
# server.log), DATABASE, TOKEN_NAME, TOKEN, BASE and SERVER_PID, and stops the server
# (gracefully, so that it flushes its request history) when the script exits; KEEP=1
# keeps WORK.
start_fresh_server() {
    local name="$1" role="$2"
    FRESH_SHARED="$3"
    FRESH_KEEP="$4"
    shift 4
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/custodian-$name.XXXXXX")"
    SERVER_PID=""
    trap fresh_server_cleanup EXIT
    if [[ -n "$FRESH_SHARED" ]]; then
        DATABASE="$FRESH_SHARED"
        # A shared database may already hold an operator of that name.
        TOKEN_NAME="$name-$(date +%s)-$$"
    else
        DATABASE="sqlite://$WORK/$name.db"
        TOKEN_NAME="$name"
    fi

    # A free port: bind port 0, read what the kernel chose, release it.
    local port
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    BASE="http://127.0.0.1:$port"

    # `migrate` creates the database (no other command but `serve` does); `user create
    # --api-only` prints the token, and only the token, on stdout.
    "$BIN" migrate --database "$DATABASE" 2>"$WORK/migrate.log" ||
        { cat "$WORK/migrate.log" >&2; die "could not migrate $DATABASE"; }
    TOKEN="$("$BIN" user create --api-only --name "$TOKEN_NAME" --role "$role" --database "$DATABASE" \
        2>"$WORK/user-create.log")" || { cat "$WORK/user-create.log" >&2; die "could not create the $role token"; }
    [[ -n "$TOKEN" ]] || die "user create printed no token"

    log "starting $BIN on $BASE"
    CUSTODIAN_LOG="${CUSTODIAN_LOG:-info,sqlx=warn}" \
        "$BIN" serve --listen "127.0.0.1:$port" --database "$DATABASE" "$@" >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!

    # Wait (at most 30 s) until GET /healthz answers 200.
    local ready=0
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
}

fresh_server_cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        # Graceful shutdown flushes the request history; give it a few seconds.
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n "$FRESH_SHARED" && -n "${TOKEN:-}" ]]; then
        "$BIN" user delete "$TOKEN_NAME" --database "$DATABASE" >/dev/null 2>&1 || true
    fi
    if [[ "$FRESH_KEEP" == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}

# server_log_errors: the server's own view of a failed run (5xx causes, panics).
server_log_errors() {
    if grep -qiE 'error|panic' "$WORK/server.log"; then
        log "server log errors:"
        grep -iE 'error|panic' "$WORK/server.log" | tail -n 40 >&2
    fi
}

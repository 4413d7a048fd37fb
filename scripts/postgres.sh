#!/usr/bin/env bash
# PostgreSQL for the tests, the conformance checkers and the benchmarks.
#
#   scripts/postgres.sh ensure         makes a server answer at $CUSTODIAN_TEST_POSTGRES_URL
#                                      (installing and starting Debian's PostgreSQL, with
#                                      trust authentication on 127.0.0.1, when none does)
#   scripts/postgres.sh fresh-db NAME  (re)creates database NAME there and prints its URL
#
# CUSTODIAN_TEST_POSTGRES_URL defaults to postgres://postgres@127.0.0.1:5432/postgres.
set -euo pipefail

SERVER_URL="${CUSTODIAN_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
answers() { command -v psql >/dev/null && psql "$SERVER_URL" -tAc 'SELECT 1' >/dev/null 2>&1; }

# The URL of database $1 on the same server (query string kept).
url_of() {
    local base="${SERVER_URL%%\?*}" query=""
    [[ "$SERVER_URL" == *\?* ]] && query="?${SERVER_URL#*\?}"
    local scheme="${base%%://*}://" rest="${base#*://}"
    echo "${scheme}${rest%%/*}/$1${query}"
}

case "${1:-}" in
ensure)
    if answers; then exit 0; fi
    echo "PostgreSQL does not answer at $SERVER_URL: installing and starting one" >&2
    if ! command -v pg_ctlcluster >/dev/null; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    version=$(ls /etc/postgresql | sort -V | tail -1)
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    if ! as_root grep -q '^host all postgres 127.0.0.1/32 trust' "$hba"; then
        # The tests connect as postgres over TCP without a password, like CI's server.
        as_root sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
    fi
    as_root pg_ctlcluster "$version" main start 2>/dev/null || as_root pg_ctlcluster "$version" main reload
    for _ in $(seq 1 60); do
        if answers; then exit 0; fi
        sleep 1
    done
    echo "PostgreSQL still does not answer at $SERVER_URL" >&2
    exit 1
    ;;
fresh-db)
    name="${2:?usage: scripts/postgres.sh fresh-db NAME}"
    psql "$SERVER_URL" -q -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name" >&2
    url_of "$name"
    ;;
*)
    echo "usage: scripts/postgres.sh ensure | fresh-db NAME" >&2
    exit 2
    ;;
esac

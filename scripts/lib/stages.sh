# Stage timing for scripts/test and .ci/run (sourced, not run).
#
#   stage NAME   ends the stage in progress (recording its time) and starts NAME
#   stage_end    ends the stage in progress
#   stage_report prints every recorded stage with its time, and the total
#
# Times go to $CUSTODIAN_STAGE_LOG ("seconds<TAB>name" lines), so that .ci/run can print
# the stages of scripts/test together with its own; without it, to a file of this shell.

if [[ -z "${CUSTODIAN_STAGE_LOG:-}" ]]; then
    CUSTODIAN_STAGE_LOG="$(mktemp)"
    export CUSTODIAN_STAGE_LOG
fi
_stage_name=""
_stage_started=0

stage_end() {
    if [[ -n "$_stage_name" ]]; then
        printf '%s\t%s\n' "$((SECONDS - _stage_started))" "$_stage_name" >>"$CUSTODIAN_STAGE_LOG"
        _stage_name=""
    fi
}

stage() {
    stage_end
    _stage_name="$1"
    _stage_started=$SECONDS
    echo "== $1"
}

stage_report() {
    stage_end
    [[ -s "$CUSTODIAN_STAGE_LOG" ]] || return 0
    echo "== stage times"
    awk -F '\t' '{ printf "%6dm%02ds  %s\n", $1 / 60, $1 % 60, $2; total += $1 }
                 END { printf "%6dm%02ds  total\n", total / 60, total % 60 }' "$CUSTODIAN_STAGE_LOG"
}

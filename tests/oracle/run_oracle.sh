#!/usr/bin/env bash
# Oracle test for `macula sup-run`: every scenario in tests/oracle/scenarios is played by the C
# binary and by OTP 25's real supervisor (sup_oracle.escript); the two traces must be equal.
#
#   run_oracle.sh MACULA [NAME...]             compare with a live OTP run (needs escript)
#   run_oracle.sh --expected MACULA [NAME...]  compare with the golden files in expected/
#   run_oracle.sh --update-expected [NAME...]  regenerate the golden files from OTP
#
# NAME selects scenarios by substring of their file name (default: all). Scenarios run 8 at a
# time (the OTP side plays them in real time and mostly sleeps; JOBS=N overrides). Prints
# `PASS name` or `FAIL name` plus the diff (expected first: OTP/golden, then C), and ends with
# `N passed, N failed`; the exit status is non-zero if any scenario failed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
mode=live
case "${1:-}" in
    --expected) mode=expected; shift ;;
    --update-expected) mode=update; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
esac

macula=
if [ "$mode" != update ]; then
    if [ $# -lt 1 ]; then
        echo "usage: $0 [--expected] MACULA [NAME...] | $0 --update-expected [NAME...]" >&2
        exit 64
    fi
    macula=$1; shift
    case "$macula" in /*) ;; *) macula="$PWD/$macula" ;; esac
    if [ ! -x "$macula" ]; then
        echo "$0: $macula is not an executable" >&2
        exit 64
    fi
fi

if [ "$mode" != expected ] && ! command -v escript >/dev/null 2>&1; then
    if [ "$mode" = update ]; then
        echo "$0: escript not found (Erlang/OTP 25 needed to regenerate)" >&2
        exit 64
    fi
    echo "$0: escript not found: comparing with the golden files (--expected)" >&2
    mode=expected
fi

scenarios=()
for f in "$here"/scenarios/*.json; do
    name=$(basename "$f" .json)
    if [ $# -eq 0 ]; then
        scenarios+=("$name")
    else
        for pat in "$@"; do
            case "$name" in *"$pat"*) scenarios+=("$name"); break ;; esac
        done
    fi
done
if [ ${#scenarios[@]} -eq 0 ]; then
    echo "$0: no scenario selected" >&2
    exit 64
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sup_oracle.XXXXXX")
trap 'rm -rf "$work"' EXIT
export here mode macula work

run_one() {
    local name=$1 json="$here/scenarios/$1.json" out="$work/$1"
    mkdir -p "$out"
    local to=
    command -v timeout >/dev/null 2>&1 && to="timeout 120"
    if [ "$mode" = update ]; then
        if $to escript "$here/sup_oracle.escript" "$json" >"$out/otp" 2>"$out/otp.err"; then
            cp "$out/otp" "$here/expected/$name.trace"
            echo pass >"$out/status"
        else
            { echo "sup_oracle.escript failed:"; cat "$out/otp.err"; } >"$out/report"
            echo fail >"$out/status"
        fi
        return 0
    fi
    local c_rc=0 ref="$out/otp"
    if [ "$mode" = live ]; then
        $to escript "$here/sup_oracle.escript" "$json" >"$out/otp" 2>"$out/otp.err" &
        local otp_pid=$!
        (cd "$here/../.." && $to "$macula" sup-run "$json") >"$out/c" 2>"$out/c.err" || c_rc=$?
        local otp_rc=0
        wait "$otp_pid" || otp_rc=$?
        if [ $otp_rc -ne 0 ]; then
            { echo "sup_oracle.escript exited with $otp_rc:"; cat "$out/otp.err"; } >"$out/report"
            echo fail >"$out/status"
            return 0
        fi
        # OTP plays the scenario in real time (restart intensity counts whole seconds): on a
        # loaded machine its trace can come out differently. When C differs, OTP plays it
        # once more; C must equal one of OTP's two runs.
        if [ $c_rc -eq 0 ] && ! cmp -s "$out/otp" "$out/c"; then
            if $to escript "$here/sup_oracle.escript" "$json" >"$out/otp2" 2>"$out/otp2.err" &&
                cmp -s "$out/otp2" "$out/c"; then
                echo "warning: OTP's first run of $name differed (timing); its second run equals C" \
                    >"$out/warn"
                mv "$out/otp2" "$out/otp"
            fi
        fi
        if [ -f "$here/expected/$name.trace" ] && ! cmp -s "$out/otp" "$here/expected/$name.trace"; then
            echo "warning: OTP output of $name differs from expected/$name.trace" >>"$out/warn"
        fi
    else
        ref="$here/expected/$name.trace"
        if [ ! -f "$ref" ]; then
            echo "no golden file expected/$name.trace" >"$out/report"
            echo fail >"$out/status"
            return 0
        fi
        (cd "$here/../.." && $to "$macula" sup-run "$json") >"$out/c" 2>"$out/c.err" || c_rc=$?
    fi
    if [ $c_rc -eq 0 ] && cmp -s "$ref" "$out/c"; then
        echo pass >"$out/status"
    else
        {
            [ $c_rc -ne 0 ] && { echo "macula sup-run exited with $c_rc:"; head -n 20 "$out/c.err"; }
            diff -u --label "otp/$name" --label "c/$name" "$ref" "$out/c"
        } >"$out/report"
        echo fail >"$out/status"
    fi
}
export -f run_one

printf '%s\n' "${scenarios[@]}" | xargs -P "${JOBS:-8}" -n 1 bash -c 'run_one "$1"' _

passed=0
failed=0
for name in "${scenarios[@]}"; do
    out="$work/$name"
    [ -f "$out/warn" ] && cat "$out/warn" >&2
    if [ "$(cat "$out/status" 2>/dev/null)" = pass ]; then
        echo "PASS $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        [ -f "$out/report" ] && sed 's/^/    /' "$out/report"
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]

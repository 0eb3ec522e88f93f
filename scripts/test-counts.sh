# Sourced by scripts/test.sh and scripts/test-bindings.sh: the counts behind the test command's
# closing line `all: N passed, N failed, N skipped`.
#
# Each part appends `NAME PASSED FAILED SKIPPED STATUS` to the file named by $STOCKSYNC_TEST_COUNTS
# (nothing is written when it is unset, e.g. test-bindings.sh run alone). A part that exits
# non-zero without a failing test of its own (a compile error, a crash, a formatting diff) counts
# as one failure, so a failed command never ends with `0 failed`.

# counts_record NAME PASSED FAILED SKIPPED STATUS
counts_record() {
    local failed=$3
    if [[ "$5" != 0 && "$failed" == 0 ]]; then
        failed=1
    fi
    if [[ -n "${STOCKSYNC_TEST_COUNTS:-}" ]]; then
        printf '%s %d %d %d %d\n' "$1" "$2" "$failed" "$4" "$5" >>"$STOCKSYNC_TEST_COUNTS"
    fi
}

# counts_parse PARSER LOG: prints `PASSED FAILED SKIPPED` read from a part's output.
#   cargo   the `test result: ok. 5 passed; 0 failed; 1 ignored; …` line of each test binary
#   pytest  the last summary line (`1 failed, 11 passed, 2 skipped in 3.1s`; errors count as failed)
#   junit   JUnitCore's `OK (7 tests)` or `Tests run: 7,  Failures: 2`
#   swift   ios/check_swift_syntax.py's `ok   ios/…` / `FAIL ios/…` line per file
counts_parse() {
    case "$1" in
    cargo)
        awk '/^test result:/ { p += $4; f += $6; s += $8 } END { print p + 0, f + 0, s + 0 }' "$2"
        ;;
    pytest)
        awk '/^=*[ ]*[0-9]+ (passed|failed|skipped|errors?|xfailed|xpassed|deselected)/ { last = $0 }
             END {
                 n = split(last, w, /[ ,=]+/)
                 for (i = 1; i < n; i++) {
                     if (w[i] !~ /^[0-9]+$/) continue
                     if (w[i + 1] ~ /^(passed|xpassed)$/) p += w[i]
                     else if (w[i + 1] ~ /^(failed|errors?)$/) f += w[i]
                     else if (w[i + 1] ~ /^(skipped|xfailed)$/) s += w[i]
                 }
                 print p + 0, f + 0, s + 0
             }' "$2"
        ;;
    junit)
        awk '/^OK \([0-9]+ tests?\)/ { gsub(/[^0-9]/, "", $2); p = $2; f = 0 }
             /^Tests run: [0-9]+, +Failures: [0-9]+/ { gsub(/[^0-9]/, "", $3); gsub(/[^0-9]/, "", $5); p = $3 - $5; f = $5 }
             END { print p + 0, f + 0, 0 }' "$2"
        ;;
    swift)
        awk '/^ok +ios\// { p++ } /^FAIL +ios\// { f++ } END { print p + 0, f + 0, 0 }' "$2"
        ;;
    *)
        echo "counts_parse: unknown parser $1" >&2
        return 2
        ;;
    esac
}

# counts_run NAME PARSER CMD…: runs CMD (output shown as it comes, stderr included), prints
# `NAME: N passed, N failed, N skipped`, records the counts and returns CMD's exit status.
counts_run() {
    local name=$1 parser=$2 log status=0 p f s
    shift 2
    log=$(mktemp)
    "$@" 2>&1 | tee "$log" || status=$?
    read -r p f s < <(counts_parse "$parser" "$log")
    rm -f "$log"
    if [[ "$status" != 0 && "$f" == 0 ]]; then
        f=1 # as counts_record counts it
    fi
    echo "$name: $p passed, $f failed, $s skipped"
    counts_record "$name" "$p" "$f" "$s" "$status"
    return "$status"
}

# counts_summary: the per-part lines, the parts that did not run, and `all: …` as the last line.
counts_summary() {
    local parts=(rustfmt clippy rust bindings-tools bindings-generated python kotlin swift readme)
    local file=${STOCKSYNC_TEST_COUNTS:-/dev/null}
    echo "== summary"
    awk -v order="${parts[*]}" '
        BEGIN { n = split(order, o, " ") }
        { seen[$1] = 1; p[$1] += $2; f[$1] += $3; s[$1] += $4; P += $2; F += $3; S += $4 }
        END {
            for (i = 1; i <= n; i++) {
                k = o[i]
                if (!(k in seen)) { missing = missing " " k; continue }
                # rustfmt, clippy and the binding setup have no tests: shown when they failed
                if (p[k] + f[k] + s[k] == 0) continue
                if (k ~ /^(rustfmt|clippy|bindings-)/ && f[k] == 0) continue
                printf "%s: %d passed, %d failed, %d skipped\n", k, p[k], f[k], s[k]
            }
            if (missing != "") print "not run:" missing
            printf "all: %d passed, %d failed, %d skipped\n", P, F, S
        }' "$file"
}

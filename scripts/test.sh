#!/usr/bin/env bash
# opsd's test command. As root on a fresh Debian 12:
#
#   1. installs what the build and the tests need (scripts/deps.sh);
#   2. builds two trees, each with --werror and the op journal's fault
#      injection points (-Dfault_injection=true: test trees only):
#        build       a normal build
#        build-asan  with AddressSanitizer and UndefinedBehaviorSanitizer
#      and in each runs the C unit tests (meson test) and the pytest
#      integration suite (tests/integration, with OPSD_BUILD=<tree>);
#   3. if clang-14 is there, builds build-fuzz and runs every libFuzzer
#      target for FUZZ_SECONDS (default 60) seconds; each target is a test.
#
# It goes on after a failure, so one run shows everything, and ends with a
# line "N passed, N failed, N skipped" summing all of it (unit tests as
# meson counts them, integration tests as pytest does, one per fuzz
# target). The exit status is 1 if anything failed.
#
# Environment: FUZZ_SECONDS (60; 0 skips fuzzing), PYTEST_TIMEOUT (seconds
# per tree, 1500), PYTEST_JOBS (pytest-xdist workers for the integration
# suite of the plain build; default 2, which halves its wall time on a
# 2-core machine), PYTEST_JOBS_ASAN (the same for the ASan tree; default 1:
# two ASan workers starve its timing-sensitive crash tests), PYTEST_ARGS
# (extra pytest arguments, e.g. "-k probe").
set -u
set -o pipefail

cd "$(dirname "$0")/.." || exit 1
root=$PWD

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
PYTEST_TIMEOUT=${PYTEST_TIMEOUT:-1500}
PYTEST_JOBS=${PYTEST_JOBS:-2}
PYTEST_JOBS_ASAN=${PYTEST_JOBS_ASAN:-1}
PYTEST_ARGS=${PYTEST_ARGS:-}
PYTHON=/usr/bin/python3		# Debian's, which has python3-pytest

case $FUZZ_SECONDS in
''|*[!0-9]*)
	echo "FUZZ_SECONDS must be a number of seconds (0: no fuzzing)" >&2
	exit 2
	;;
esac

asan_env=(
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
)

passed=0
failed=0
skipped=0
failures=()		# what failed, for the summary
summary=()		# one line per phase
nsection=0
build_partial=0		# set by build_tree: only some targets built
start_all=$SECONDS

section() {
	nsection=$((nsection + 1))
	printf '\n==== [%d] %s ====\n' "$nsection" "$*"
}

# record PHASE SECONDS RESULT
record() {
	summary+=("$(printf '%-28s %5ss  %s' "$1" "$2" "$3")")
}

fail() {
	failed=$((failed + 1))
	failures+=("$1")
}

# build_tree TREE LABEL [meson -D options...]: configures (or reconfigures
# an existing tree with the same options) and builds. 0 or 1.
build_tree() {
	local tree=$1 label=$2 t0=$SECONDS rc setup_log
	shift 2

	section "build: $tree ($label)"
	build_partial=0
	setup_log=$(mktemp /tmp/opsd-setup.XXXXXX)
	if [ -f "$tree/build.ninja" ]; then
		meson setup --reconfigure "$tree" "$@" >"$setup_log" 2>&1
		rc=$?
		if [ $rc -ne 0 ]; then
			echo "reconfigure failed; setting $tree up afresh"
			meson setup --wipe "$tree" "$@" >"$setup_log" 2>&1
			rc=$?
		fi
	else
		meson setup "$tree" "$@" >"$setup_log" 2>&1
		rc=$?
	fi
	if [ $rc -ne 0 ]; then
		cat "$setup_log"
		rm -f "$setup_log"
		echo "FAILED: meson setup $tree"
		fail "build $tree: meson setup"
		record "build $tree" $((SECONDS - t0)) "FAILED (meson setup)"
		return 1
	fi
	rm -f "$setup_log"
	# only what went wrong or warnings, not every compile line; -k 0:
	# build all that compiles, so one broken unit test does not keep
	# the integration tests from running
	ninja -C "$tree" -k 0 >"$tree/meson-logs/ninja.log" 2>&1
	rc=$?
	grep -E -A6 'warning:|error:|FAILED:' "$tree/meson-logs/ninja.log" |
	    head -n 200
	if [ $rc -ne 0 ]; then
		echo "FAILED: ninja -C $tree (full log: $tree/meson-logs/ninja.log)"
		fail "build $tree: ninja"
		if ninja -C "$tree" daemon/opsd client/opsd-cli >/dev/null 2>&1
		then
			echo "opsd and opsd-cli built: testing what can be tested"
			build_partial=1
			record "build $tree" $((SECONDS - t0)) \
			    "FAILED (some targets)"
			return 0
		fi
		record "build $tree" $((SECONDS - t0)) "FAILED (compile)"
		return 1
	fi
	echo "built $tree in $((SECONDS - t0))s"
	record "build $tree" $((SECONDS - t0)) "ok"
	return 0
}

# unit_tests TREE [env...]: meson test, counted from testlog.json.
unit_tests() {
	local tree=$1 t0=$SECONDS log counts p f s names
	shift

	section "unit tests: $tree (meson test)"
	log=$tree/meson-logs/testlog.json
	rm -f "$log"
	env "$@" meson test -C "$tree" --print-errorlogs
	if [ ! -s "$log" ]; then
		echo "FAILED: meson test left no $log"
		fail "unit $tree: meson test did not run"
		record "unit $tree" $((SECONDS - t0)) "FAILED (did not run)"
		return
	fi
	counts=$("$PYTHON" - "$log" <<'EOF'
import json, sys
p = f = s = 0
bad = []
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    try:
        r = json.loads(line)
    except ValueError:
        continue
    res = r.get("result", "")
    if res in ("OK", "EXPECTEDFAIL"):
        p += 1
    elif res == "SKIP":
        s += 1
    else:
        f += 1
        bad.append("%s (%s)" % (r.get("name", "?"), res))
print(p, f, s, ", ".join(bad))
EOF
)
	read -r p f s names <<<"$counts"
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
	if [ "$f" -gt 0 ]; then
		failures+=("unit $tree: $names")
	fi
	record "unit $tree" $((SECONDS - t0)) "$p passed, $f failed, $s skipped"
}

# integration_tests TREE [env...]: pytest, counted from its junit xml.
integration_tests() {
	local tree=$1 t0=$SECONDS xml rc counts p f s names jobs
	shift

	section "integration tests: $tree (pytest tests/integration)"
	xml=$tree/pytest.xml
	rm -f "$xml"
	if [ -z "$(find tests/integration \( -name 'test_*.py' -o \
	    -name '*_test.py' \) -print -quit 2>/dev/null)" ]; then
		echo "no tests in tests/integration yet"
		record "integration $tree" $((SECONDS - t0)) "no tests"
		return
	fi
	# the tests are independent (free ports, private dirs)
	jobs=
	n=$PYTEST_JOBS
	case $tree in *asan*) n=$PYTEST_JOBS_ASAN ;; esac
	if [ "$n" -gt 1 ] 2>/dev/null; then
		jobs="-n $n"
	fi
	echo "OPSD_BUILD=$root/$tree $PYTHON -m pytest tests/integration -q $jobs"
	# shellcheck disable=SC2086
	env "$@" OPSD_BUILD="$root/$tree" timeout --kill-after=30 \
	    "$PYTEST_TIMEOUT" "$PYTHON" -m pytest tests/integration -q $jobs \
	    -p no:cacheprovider --tb=short --junitxml="$xml" $PYTEST_ARGS
	rc=$?
	if [ $rc -eq 5 ]; then
		echo "pytest collected no tests"
		record "integration $tree" $((SECONDS - t0)) "no tests"
		return
	fi
	if [ ! -s "$xml" ]; then
		if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
			echo "FAILED: pytest did not finish in ${PYTEST_TIMEOUT}s"
		else
			echo "FAILED: pytest exited $rc without a report"
		fi
		fail "integration $tree: pytest exited $rc, no report"
		record "integration $tree" $((SECONDS - t0)) \
		    "FAILED (pytest exit $rc)"
		return
	fi
	counts=$("$PYTHON" - "$xml" <<'EOF'
# One outcome per test: a test that failed and then also errored in its
# teardown appears twice in the report but counts once, as failed.
import sys
import xml.etree.ElementTree as ET
outcome = {}
for tc in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    key = "%s::%s" % (tc.get("classname", ""), tc.get("name", ""))
    if tc.find("failure") is not None or tc.find("error") is not None:
        res = "failed"
    elif tc.find("skipped") is not None:
        res = "skipped"
    else:
        res = "passed"
    if outcome.get(key) != "failed":
        outcome[key] = res
res = list(outcome.values())
bad = [k for k, v in outcome.items() if v == "failed"]
print(res.count("passed"), len(bad), res.count("skipped"), ", ".join(bad))
EOF
)
	read -r p f s names <<<"$counts"
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
	if [ "$f" -gt 0 ]; then
		failures+=("integration $tree: $names")
	elif [ $rc -ne 0 ]; then
		# interrupted, or an error pytest did not put in the report
		fail "integration $tree: pytest exited $rc"
	fi
	record "integration $tree" $((SECONDS - t0)) \
	    "$p passed, $f failed, $s skipped"
}

# fuzz_tests: builds build-fuzz with clang-14 and runs each target.
fuzz_tests() {
	local tree=build-fuzz t0 targets=() t name pids=() i rc log work
	local seeds=()
	local nfail=0

	if ! command -v clang-14 >/dev/null 2>&1 || [ "$FUZZ_SECONDS" -eq 0 ]
	then
		section "fuzzing"
		if [ "$FUZZ_SECONDS" -eq 0 ]; then
			echo "FUZZ_SECONDS=0: fuzz targets skipped"
		else
			echo "clang-14 not found: fuzz targets skipped"
		fi
		skipped=$((skipped + $(find fuzz -name 'fuzz-*.c' | wc -l)))
		record "fuzz" 0 "skipped"
		return
	fi
	if ! CC=clang-14 build_tree "$tree" "clang-14, libFuzzer, ASan+UBSan" \
	    -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
	    -Dwerror=false || [ "$build_partial" -eq 1 ]; then
		return
	fi
	# one target per fuzz/fuzz-NAME.c
	for t in fuzz/fuzz-*.c; do
		[ -f "$t" ] || continue
		t=$tree/fuzz/$(basename "$t" .c)
		if [ -x "$t" ]; then
			targets+=("$t")
		else
			fail "$(basename "$t"): not built"
		fi
	done
	if [ ${#targets[@]} -eq 0 ]; then
		return
	fi

	t0=$SECONDS
	section "fuzzing: ${#targets[@]} targets, ${FUZZ_SECONDS}s each, in parallel"
	for t in "${targets[@]}"; do
		name=${t##*/fuzz-}
		work=$tree/corpus/$name		# grows from run to run
		mkdir -p "$work" "$tree/artifacts"
		# libFuzzer adds new inputs to the first directory only
		seeds=()
		[ -d "fuzz/corpus/$name" ] && seeds=("fuzz/corpus/$name")
		log=$tree/fuzz-$name.log
		# -close_fd_mask=2 silences the daemon's own logging; libFuzzer
		# and the sanitizers still report on a copy of stderr.
		env "${asan_env[@]}" timeout --kill-after=30 \
		    $((FUZZ_SECONDS + 120)) "$t" \
		    -max_total_time="$FUZZ_SECONDS" -timeout=25 \
		    -close_fd_mask=2 -print_final_stats=1 \
		    -artifact_prefix="$tree/artifacts/$name-" \
		    "$work" "${seeds[@]}" >"$log" 2>&1 &
		pids+=($!)
	done
	i=0
	for t in "${targets[@]}"; do
		name=${t##*/fuzz-}
		log=$tree/fuzz-$name.log
		wait "${pids[$i]}"
		rc=$?
		i=$((i + 1))
		if [ $rc -eq 0 ]; then
			passed=$((passed + 1))
			printf 'ok    fuzz-%s: %s\n' "$name" \
			    "$(grep -E '^stat::number_of_executed_units' "$log" |
			    awk '{ print $2 " runs" }')"
			grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 | sed 's/^/      /'
		else
			fail "fuzz-$name (exit $rc; log $log)"
			nfail=$((nfail + 1))
			printf 'FAIL  fuzz-%s (exit %d)\n' "$name" "$rc"
			grep -E -A40 '^==[0-9]+==ERROR|runtime error|deadly signal|Test unit written|libFuzzer: ' \
			    "$log" | head -n 80
			echo "      full log: $log; reproduce with: $t <artifact>"
		fi
	done
	record "fuzz (${#targets[@]} targets)" $((SECONDS - t0)) \
	    "$((${#targets[@]} - nfail)) passed, $nfail failed"
}

section "dependencies (scripts/deps.sh)"
t0=$SECONDS
if bash scripts/deps.sh; then
	echo "all packages present"
	record "dependencies" $((SECONDS - t0)) "ok"
else
	fail "scripts/deps.sh"
	record "dependencies" $((SECONDS - t0)) "FAILED"
fi

if build_tree build "gcc, --werror" -Dwerror=true -Db_sanitize=none \
    -Db_lundef=true -Dfuzz=false -Dfault_injection=true; then
	unit_tests build
	integration_tests build
fi

if build_tree build-asan "gcc, --werror, ASan+UBSan" -Dwerror=true \
    -Db_sanitize=address,undefined -Db_lundef=false -Dfuzz=false \
    -Dfault_injection=true; then
	unit_tests build-asan "${asan_env[@]}"
	integration_tests build-asan "${asan_env[@]}"
fi

fuzz_tests

section "summary"
for line in "${summary[@]}"; do
	echo "$line"
done
printf '%-28s %5ss\n' "total" $((SECONDS - start_all))
if [ ${#failures[@]} -gt 0 ]; then
	echo
	echo "failed:"
	for line in "${failures[@]}"; do
		echo "  $line"
	done
fi
echo
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]

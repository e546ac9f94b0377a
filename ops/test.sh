#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
#   ops/test.sh
# Installs and starts what the tests need (ops/setup.sh: PostgreSQL, RabbitMQ), builds the
# solution with warnings as errors, checks formatting, runs every test project against the real servers
# (the Kafka broker is librdkafka's mock cluster, hosted by the tests themselves), and ends with one line
# "N passed, N failed" summed over every project. Exits non-zero on any failure.
# Environment: TM_TEST_CONFIGURATION (Release), TM_TEST_FILTER (dotnet test --filter expression),
# TM_SOAK=1 runs the longer soaks and extra seeds.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$TM_ROOT"

CONFIGURATION="${TM_TEST_CONFIGURATION:-Release}"
RESULTS="$TM_ROOT/artifacts/test-results"

"$TM_ROOT/ops/setup.sh"

log "build ($CONFIGURATION)"
dotnet build TaggedMirror.sln -c "$CONFIGURATION" -nologo -v q

log "format check"
dotnet format TaggedMirror.sln --verify-no-changes --no-restore -v q ||
  die "formatting differs: run 'dotnet format TaggedMirror.sln' and commit"

rm -rf "$RESULTS"
mkdir -p "$RESULTS"
passed=0
failed=0
status=0
for project in tests/*/*.csproj; do
  name="$(basename "$project" .csproj)"
  log "test $name"
  args=(test "$project" -c "$CONFIGURATION" --no-build -nologo
        --logger "trx;LogFileName=$name.trx" --results-directory "$RESULTS")
  if [[ -n ${TM_TEST_FILTER:-} ]]; then args+=(--filter "$TM_TEST_FILTER"); fi
  rc=0
  dotnet "${args[@]}" || rc=$?
  if ((rc != 0)); then status=1; fi
  trx="$RESULTS/$name.trx"
  if [[ -f $trx ]]; then
    counters="$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)"
    p="$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")"
    f="$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")"
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    # A run that failed with no test failed (its test host crashed: "Test Run Aborted", the rest of its tests never
    # ran) is one failure too, so the summary never says 0 failed on a failing run.
    if ((rc != 0 && ${f:-0} == 0)); then
      log "$name: the test run failed (exit $rc) with no test failed: aborted (a crashed test host?); counted as one failure"
      failed=$((failed + 1))
    fi
  else
    # No results at all (crash, build problem): count the project as one failure.
    failed=$((failed + 1))
    status=1
  fi
done

if ((failed > 0)); then status=1; fi
echo "$passed passed, $failed failed"
exit "$status"

#!/usr/bin/env bash
# Runs fuzz targets built by build.sh: run.sh BIN_DIR SECONDS [TARGET...] (default: all).
# First replays each target's committed seeds (corpus/TARGET), then fuzzes each target for
# SECONDS, FUZZ_JOBS (default 1) targets at a time, with the tokens of dict/TARGET.dict. New inputs go to target/corpus/TARGET,
# an input that crashed to artifacts/TARGET/. Prints the executions of each target and
# exits 1 when any target crashed.
set -euo pipefail
bin=$(cd "$1" && pwd)
cd "$(dirname "$0")"
seconds=$2
shift 2
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(form route sse config expr schema)
fi
jobs=${FUZZ_JOBS:-1}
mkdir -p target/logs
failed=()

for t in "${targets[@]}"; do
  if [ ! -x "$bin/$t" ]; then
    echo "no fuzz target $bin/$t: build it with fuzz/build.sh"
    exit 1
  fi
done

for t in "${targets[@]}"; do
  if ! "$bin/$t" corpus/"$t"/* >target/logs/"$t".replay.log 2>&1; then
    echo "== $t: a committed seed crashed"
    tail -n 40 target/logs/"$t".replay.log
    failed+=("$t")
  fi
done
echo "replayed the committed corpus of ${#targets[@]} targets"

fuzz() {
  local t=$1
  mkdir -p target/corpus/"$t" artifacts/"$t"
  "$bin/$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -dict=dict/"$t".dict -artifact_prefix=artifacts/"$t"/ target/corpus/"$t" corpus/"$t" \
    >target/logs/"$t".log 2>&1
}

report() {
  local t=$1 status=$2 execs
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' target/logs/"$t".log | tail -n 1)
  if [ "$status" -eq 0 ]; then
    printf '%-8s %12s executions in %s s, no crash\n' "$t" "${execs:-?}" "$seconds"
  else
    echo "== $t: crashed (input kept in fuzz/artifacts/$t/)"
    tail -n 60 target/logs/"$t".log
    failed+=("$t")
  fi
}

i=0
while [ $i -lt ${#targets[@]} ]; do
  group=("${targets[@]:$i:$jobs}")
  pids=()
  for t in "${group[@]}"; do
    fuzz "$t" &
    pids+=($!)
  done
  for k in "${!group[@]}"; do
    status=0
    wait "${pids[$k]}" || status=$?
    report "${group[$k]}" "$status"
  done
  i=$((i + jobs))
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing failed: $(printf '%s\n' "${failed[@]}" | sort -u | tr '\n' ' ')"
  exit 1
fi

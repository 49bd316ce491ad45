#!/usr/bin/env bash
# Fuzzes each target for MINUTES minutes (default 10), one at a time at the lowest CPU
# priority, with the optimised build, and prints the executions of each:
#   bash bench/fuzz.sh 10 [TARGET...]
set -euo pipefail
minutes=${1:-10}
shift || true
fuzz="$(dirname "$0")/../fuzz"
bin=$(FUZZ_PROFILE=release nice -n 19 "$fuzz/build.sh")
FUZZ_JOBS=1 nice -n 19 "$fuzz/run.sh" "$bin" $((minutes * 60)) "$@"

#!/usr/bin/env bash
# CI's fuzz step: builds the fuzz targets (the `quick` profile: unoptimised, so the build
# stays short), replays the committed corpus of each, then fuzzes each for FUZZ_SECONDS
# (default 20), two at a time. Fails on any crash.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
bin=$(FUZZ_PROFILE=${FUZZ_PROFILE:-quick} fuzz/build.sh)
echo "fuzz targets built in $(($(date +%s) - started)) s"
FUZZ_JOBS=${FUZZ_JOBS:-2} fuzz/run.sh "$bin" "${FUZZ_SECONDS:-20}"
echo "fuzz step took $(($(date +%s) - started)) s"

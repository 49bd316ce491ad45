#!/usr/bin/env bash
# Builds every fuzz target with libFuzzer's coverage instrumentation on stable Rust, the
# flags `cargo fuzz build --sanitizer none` uses, into fuzz/target/HOST/release/ (where
# cargo-fuzz looks too). Prints that folder on stdout.
set -euo pipefail
cd "$(dirname "$0")"
host=$(rustc -vV | sed -n 's/^host: //p')
flags=(
  -Cpasses=sancov-module
  -Cllvm-args=-sanitizer-coverage-level=4
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
  -Cllvm-args=-sanitizer-coverage-pc-table
  -Cllvm-args=-sanitizer-coverage-trace-compares
  --cfg fuzzing
)
# `--target` keeps the flags off build scripts and proc macros.
RUSTFLAGS="${flags[*]} ${RUSTFLAGS:-}" CARGO_TARGET_DIR="$PWD/target" \
  cargo build --profile "${FUZZ_PROFILE:-release}" --locked --target "$host" --bins >&2
echo "$PWD/target/$host/${FUZZ_PROFILE:-release}"

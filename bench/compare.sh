#!/usr/bin/env bash
# agentos serve vs. the reference Agno AgentOS, same workload, same fake model, one run.
#
#   bash bench/compare.sh             # full run: wrk 10 s per step, ~8-12 min
#   QUICK=1 bash bench/compare.sh     # wrk 5 s per step, fewer repetitions, ~4-6 min
#
# What it does (loopback only; every step is bounded by `timeout`):
#   0  builds agentos and examples/fake_llm.rs in release; creates the Agno venv
#      ($VENV, as ../shared/bench/run_agno_baseline.sh does) if missing; wrk via apt-get
#      if missing
#   1  starts ONE native fake OpenAI-compatible model (examples/fake_llm.rs, 50-token
#      replies, 0 ms think time) that both servers use
#   2  start-up, spawn -> GET /health 200, fresh and existing db (both servers)
#   3  starts both servers side by side: `agentos serve` with a generated agents.toml that
#      mirrors ../shared/bench/agno_app.py (agents bench, bench-hist, bench-hist-all,
#      bench-paced, bench-slow; same instructions and history settings), and agno_app.py;
#      every following step runs against Agno, then against agentos; first, on each fresh
#      server, 100 sequential runs while the fake model counts the connections opened
#   4  idle RSS; sequential latency (non-streaming, streaming: headers / first content /
#      total, paced streaming at 20 ms per token)
#   5  wrk at c=1/8/64, non-streaming and streaming, and a paced stream (20 ms per token,
#      16 runs in flight) for CPU per separately arriving token; server CPU per run from
#      /proc/<pid>/stat (utime+stime) before/after each wrk run, RSS sampled every 100 ms
#   6  history: 200 runs in one session with the whole transcript sent (bench-hist-all,
#      num_history_runs=1000), then run 201; then 20 more runs on that session (CPU/run)
#   7  memory per in-flight run: a fresh server per level, N slow streaming runs held open;
#      agentos again at the top level with the model over HTTP/2 (h2c, one connection), and
#      INFLIGHT_MAX (10000) runs of 40 s in flight at once in one agentos process
#   8  one markdown table (Agno | agentos | factor | target) -> stdout and $OUT/summary.md
#
# The measurement driver (bench/driver/bench_runs.py and its wrk script) is part of this
# repository. The reference Agno app is not: it is read from
#   $AGENTOS_SHARED (default: ../shared relative to this repository)/bench/agno_app.py
# When that file is missing (or AGNO=0), only the agentos side is measured and the Agno
# column stays empty; the script says so at the start and in the summary.
#
# Knobs: QUICK, OUT (results dir, default target/bench-compare/<timestamp>), VENV,
#   AGENTOS_BIN / FAKE_BIN (skip the build and use these binaries), CARGO_TARGET_DIR,
#   SKIP_BUILD=1, FAKE_PORT / AGNO_PORT / AOS_PORT (default: free ports), FAKE_THREADS (2),
#   QUIET_MAX (0.25 cores of other tenants' load tolerated before a step), QUIET_WAIT (s),
#   PIN=1 (servers on CPU 0, fake model and load generator on CPU 1, via taskset),
#   INFLIGHT_LEVELS ("1 32 128 256"; quick "32 256"), HISTORY_N (200),
#   INFLIGHT_MAX (10000; 0 skips that step).
# Every process it starts is stopped by PID on exit (trap), including on Ctrl-C.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${AGENTOS_SHARED:-$REPO/../shared}"
DRIVER="$REPO/bench/driver"
AGNO="${AGNO:-1}"
AGNO_APP_DIR=""
if [ "$AGNO" = "1" ]; then
  if [ -f "$SHARED/bench/agno_app.py" ]; then
    AGNO_APP_DIR="$(cd "$SHARED/bench" && pwd)"
  else
    cat >&2 <<MSG
compare.sh: the reference Agno AgentOS app is not here ($SHARED/bench/agno_app.py).
  Measuring agentos alone; the Agno column of the summary stays empty.
  For the side-by-side run, put the reference benchmark (agno_app.py) at
  ../shared/bench next to this repository or point AGENTOS_SHARED at its parent
  (PyPI must be reachable: the Agno venv is created on first use).
MSG
  fi
fi
if [ -n "$AGNO_APP_DIR" ]; then SERVERS="agno agentos"; else SERVERS="agentos"; fi
VENV="${VENV:-/tmp/agno-perf-venv}"
PY="$VENV/bin/python"
QUICK="${QUICK:-0}"
if [ "$QUICK" = "1" ]; then
  WRK_DUR=5; LAT_N=100; STARTUP_REPEAT=3; DEF_LEVELS="32 256"; DEF_QUIET_WAIT=10
else
  WRK_DUR=10; LAT_N=300; STARTUP_REPEAT=5; DEF_LEVELS="1 32 128 256"; DEF_QUIET_WAIT=30
fi
[ "$WRK_DUR" -le 10 ] || WRK_DUR=10
INFLIGHT_LEVELS="${INFLIGHT_LEVELS:-$DEF_LEVELS}"
HISTORY_N="${HISTORY_N:-200}"
QUIET_MAX="${QUIET_MAX:-0.25}"
QUIET_WAIT="${QUIET_WAIT:-$DEF_QUIET_WAIT}"
FAKE_THREADS="${FAKE_THREADS:-2}"
PIN="${PIN:-0}"
OUT="${OUT:-$REPO/target/bench-compare/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d /tmp/agentos-compare.XXXXXX)"

STARTED_PIDS=()
cleanup() {
  local p
  for p in "${STARTED_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  for p in "${STARTED_PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
stop_pid() {  # stop one of our processes and forget it
  local p="$1" keep=() q
  kill "$p" 2>/dev/null; wait "$p" 2>/dev/null
  for q in "${STARTED_PIDS[@]:-}"; do [ "$q" != "$p" ] && [ -n "$q" ] && keep+=("$q"); done
  STARTED_PIDS=("${keep[@]:-}")
}

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" | tee -a "$OUT/log.txt" >&2; }
step() {  # step NAME TIMEOUT_S cmd...   -> $OUT/NAME.json
  local name="$1" to="$2"; shift 2
  log "$name"
  timeout "$to" "$@" > "$OUT/$name.json" 2>> "$OUT/stderr.txt" || log "  !! $name failed (rc=$?)"
  head -c 400 "$OUT/$name.json" >&2; echo >&2
}
wait_http() {  # wait_http URL SECONDS
  local i
  for i in $(seq 1 $(( $2 * 50 ))); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.02
  done
  return 1
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null; }
if [ "$PIN" = "1" ]; then SRV_PIN=(taskset -c 0); HAR_PIN=(taskset -c 1); else SRV_PIN=(); HAR_PIN=(); fi

# ---------------------------------------------------------------- 0 tools and builds
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
if [ -z "${AGENTOS_BIN:-}" ] || [ -z "${FAKE_BIN:-}" ]; then
  if [ "${SKIP_BUILD:-0}" != "1" ]; then
    log "cargo build --release (agentos, examples/fake_llm) in $CARGO_TARGET_DIR"
    (cd "$REPO" && cargo build --release --quiet --bin agentos --example fake_llm) \
      || { log "cargo build failed"; exit 1; }
  fi
fi
AGENTOS_BIN="${AGENTOS_BIN:-$CARGO_TARGET_DIR/release/agentos}"
FAKE_BIN="${FAKE_BIN:-$CARGO_TARGET_DIR/release/examples/fake_llm}"
[ -x "$AGENTOS_BIN" ] && [ -x "$FAKE_BIN" ] || { log "missing $AGENTOS_BIN or $FAKE_BIN"; exit 1; }

if [ ! -x "$PY" ]; then
  log "creating venv $VENV (as run_agno_baseline.sh does)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  if [ -n "$AGNO_APP_DIR" ]; then
    # The versions of the reference captures (tests/fixtures/agentos/README.md).
    "$VENV/bin/pip" install -q agno==3.1.10 fastapi==0.165.0 starlette==1.10.0 uvicorn==0.54.0 \
      pydantic==2.14.4 SQLAlchemy==2.1.9 openai==3.57.0 python-multipart==0.0.34 \
      jsonschema==4.26.0 greenlet==3.5.6 aiohttp uvloop httptools \
      || { log "pip install failed"; exit 1; }
  else
    "$VENV/bin/pip" install -q aiohttp || { log "pip install failed"; exit 1; }
  fi
fi
"$PY" -c 'import aiohttp' 2>/dev/null || "$VENV/bin/pip" install -q aiohttp
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get update -qq && apt-get install -y -qq wrk || { log "could not install wrk"; exit 1; }
fi

FAKE_PORT="${FAKE_PORT:-$(free_port)}"
AGNO_PORT="${AGNO_PORT:-$(free_port)}"
AOS_PORT="${AOS_PORT:-$(free_port)}"
for p in "$FAKE_PORT" "$AGNO_PORT" "$AOS_PORT"; do
  port_free "$p" || { log "port $p busy; set FAKE_PORT/AGNO_PORT/AOS_PORT"; exit 1; }
done
FAKE="http://127.0.0.1:$FAKE_PORT"

unset OS_SECURITY_KEY AGENTOS_HOST AGENTOS_PORT
# Agno side (what run_agno_baseline.sh exports), pointed at the native fake model.
export AGNO_TELEMETRY=false
export OPENAI_API_KEY=sk-fake-not-used
export FAKE_LLM_BASE_URL="$FAKE/v1"
export AGNO_PERF_DB="$WORK/agno.db"
export AGNO_PERF_PORT="$AGNO_PORT"
export AGNO_PERF_HOST=127.0.0.1
# agentos side: the same agents as agno_app.py.
export AGENTOS_CONFIG="$WORK/agents.toml"
export AGENTOS_DB="$WORK/agentos.db"
cat > "$AGENTOS_CONFIG" <<EOF
# Generated by bench/compare.sh: the agents of ../shared/bench/agno_app.py.
[providers.fake]
kind = "openai"
base_url = "$FAKE/v1"

[providers.fake-paced]
kind = "openai"
base_url = "$FAKE/cfg/delay_ms=20/v1"

[providers.fake-slow]
kind = "openai"
base_url = "$FAKE/cfg/tokens=10,delay_ms=1000/v1"

# The same slow model over HTTP/2 (h2c): every run's model call shares one connection.
[providers.fake-slow-h2]
kind = "openai"
base_url = "$FAKE/cfg/tokens=10,delay_ms=1000/v1"
http2 = true

# 40 s runs over HTTP/2, for the 10,000-runs-in-flight step.
[providers.fake-long-h2]
kind = "openai"
base_url = "$FAKE/cfg/tokens=40,delay_ms=1000/v1"
http2 = true

[[agents]]
id = "bench"
name = "Bench"
model = "fake:fake-model"
instructions = "Be concise, reply with one sentence."
markdown = false

[[agents]]
id = "bench-hist"
name = "Bench history"
model = "fake:fake-model"
instructions = "Be concise, reply with one sentence."
markdown = false
add_history_to_context = true

[[agents]]
id = "bench-hist-all"
name = "Bench full history"
model = "fake:fake-model"
instructions = "Be concise, reply with one sentence."
markdown = false
add_history_to_context = true
num_history_runs = 1000

[[agents]]
id = "bench-paced"
name = "Bench paced"
model = "fake-paced:fake-model"
instructions = "Be concise, reply with one sentence."
markdown = false

[[agents]]
id = "bench-slow"
name = "Bench slow"
model = "fake-slow:fake-model"
instructions = "Be concise, reply with one sentence."
markdown = false

[[agents]]
id = "bench-slow-h2"
name = "Bench slow over HTTP/2"
model = "fake-slow-h2:fake-model"
instructions = "Be concise, reply with one sentence."
markdown = false

[[agents]]
id = "bench-long-h2"
name = "Bench long over HTTP/2"
model = "fake-long-h2:fake-model"
instructions = "Be concise, reply with one sentence."
markdown = false
EOF
"$AGENTOS_BIN" check > "$OUT/agentos_check.txt" 2>&1 || { log "agentos check failed:"; cat "$OUT/agentos_check.txt" >&2; exit 1; }
cp "$AGENTOS_CONFIG" "$OUT/agents.toml"

B=("${HAR_PIN[@]}" "$PY" "$DRIVER/bench_runs.py")
AGNO_CMD="$PY $AGNO_APP_DIR/agno_app.py"
AOS_CMD="$AGENTOS_BIN serve --port $AOS_PORT"
declare -A URL=([agno]="http://127.0.0.1:$AGNO_PORT" [agentos]="http://127.0.0.1:$AOS_PORT")
declare -A DB=([agno]="$AGNO_PERF_DB" [agentos]="$AGENTOS_DB")
declare -A SPID=()

start_server() {  # start_server agno|agentos LOGFILE -> SPID[$1]
  local s="$1" p
  if [ "$s" = agno ]; then
    (cd "$AGNO_APP_DIR" && exec "${SRV_PIN[@]}" $AGNO_CMD) >> "$2" 2>&1 &
  else
    "${SRV_PIN[@]}" $AOS_CMD >> "$2" 2>&1 &
  fi
  p=$!; STARTED_PIDS+=("$p"); SPID[$s]=$p
  wait_http "${URL[$s]}/health" 60 || { log "$s did not start (see $2)"; tail -5 "$2" >&2; exit 1; }
}
rm_db() { rm -f "$1" "$1-wal" "$1-shm"; }
quiet() {  # quiet NAME
  "${B[@]}" quiet --pids "$(IFS=,; echo "${SPID[*]:-}${SPID[*]:+,}$FAKE_PID")" \
    --threshold "$QUIET_MAX" --max-wait "$QUIET_WAIT" > "$OUT/quiet_$1.json" 2>>"$OUT/stderr.txt"
}
check_alive() {
  local s
  for s in $SERVERS; do
    if [ -n "${SPID[$s]:-}" ] && ! kill -0 "${SPID[$s]}" 2>/dev/null; then
      log "!! $s (pid ${SPID[$s]}) died; log tail:"; tail -20 "$OUT/${s}_server.log" >&2; exit 1
    fi
  done
}

# ---------------------------------------------------------------- 1 machine, fake model
{
  echo "date: $(date -Is)"
  echo "kernel: $(uname -sr)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) x $(nproc)"
  echo "mem: $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "tmp fs: $(df -T "$WORK" | awk 'NR==2{print $2}')"
  echo "agentos: $("$AGENTOS_BIN" --version 2>&1) (git $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null)$(cd "$REPO" && git diff --quiet 2>/dev/null || echo '+dirty')), $AGENTOS_BIN"
  echo "rustc: $(rustc -V 2>/dev/null)"
  echo "python: $($PY -V 2>&1)"
  "$VENV/bin/pip" list 2>/dev/null | grep -iE '^(agno|fastapi|starlette|uvicorn|uvloop|httptools|sqlalchemy|openai|httpx|pydantic|aiohttp) ' | tr -s ' ' | sed 's/^/  /'
  echo "wrk: $(wrk --version 2>&1 | head -1)"
  echo "fake model: examples/fake_llm.rs, $FAKE_THREADS threads, 50 tokens, 0 ms think time"
  echo "pinning: $([ "$PIN" = 1 ] && echo 'servers CPU 0, harness CPU 1' || echo none)"
  echo "mode: $([ "$QUICK" = 1 ] && echo QUICK || echo full), wrk ${WRK_DUR}s"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

"${HAR_PIN[@]}" "$FAKE_BIN" --port "$FAKE_PORT" --tokens 50 --threads "$FAKE_THREADS" > "$OUT/fake_llm.log" 2>&1 &
FAKE_PID=$!; STARTED_PIDS+=("$FAKE_PID")
wait_http "$FAKE/health" 10 || { log "fake model did not start"; exit 1; }

# ---------------------------------------------------------------- 2 start-up
quiet startup
if [ -n "$AGNO_APP_DIR" ]; then
  step startup_fresh_agno 180 "${B[@]}" startup --cmd "$AGNO_CMD" --cwd "$AGNO_APP_DIR" \
    --health "${URL[agno]}/health" --repeat "$STARTUP_REPEAT" --fresh-db "$AGNO_PERF_DB"
  step startup_existing_agno 180 "${B[@]}" startup --cmd "$AGNO_CMD" --cwd "$AGNO_APP_DIR" \
    --health "${URL[agno]}/health" --repeat "$STARTUP_REPEAT"
fi
step startup_fresh_agentos 60 "${B[@]}" startup --cmd "$AOS_CMD" --cwd "$WORK" \
  --health "${URL[agentos]}/health" --repeat "$STARTUP_REPEAT" --fresh-db "$AGENTOS_DB"
step startup_existing_agentos 60 "${B[@]}" startup --cmd "$AOS_CMD" --cwd "$WORK" \
  --health "${URL[agentos]}/health" --repeat "$STARTUP_REPEAT"

# ---------------------------------------------------------------- 3 both servers
rm_db "$AGNO_PERF_DB"; rm_db "$AGENTOS_DB"
for s in $SERVERS; do start_server "$s" "$OUT/${s}_server.log"; done
sleep 1
for s in $SERVERS; do
  grep -E 'VmRSS|VmHWM|Threads' "/proc/${SPID[$s]}/status" > "$OUT/rss_idle_$s.txt"
done
# Connections to the model: 100 sequential runs on a server that has not called it yet,
# counted by the fake model (TCP connections it accepted).
for s in $SERVERS; do
  curl -s -X POST "$FAKE/stats/reset" > /dev/null
  step "conn_runs_$s" 300 "${B[@]}" latency --url "${URL[$s]}" --agent bench --n 100 --warmup 0
  curl -s "$FAKE/stats" > "$OUT/connections_$s.json"
done
for s in $SERVERS; do
  curl -s -X POST "${URL[$s]}/agents/bench/runs" -F message=hello -F stream=false > "$OUT/sample_nonstream_$s.json"
  curl -s -X POST "${URL[$s]}/agents/bench/runs" -F message=hello -F stream=true > "$OUT/sample_stream_$s.txt"
  grep -q '"COMPLETED"' "$OUT/sample_nonstream_$s.json" || log "!! $s: a non-streaming run did not complete: $(head -c 300 "$OUT/sample_nonstream_$s.json")"
  grep -q 'RunCompleted' "$OUT/sample_stream_$s.txt" || log "!! $s: a streaming run had no RunCompleted event"
done
log "servers: $(for s in $SERVERS; do printf '%s pid %s %s, ' "$s" "${SPID[$s]}" "${URL[$s]}"; done)fake pid $FAKE_PID $FAKE"

# ---------------------------------------------------------------- 4 sequential latency
for s in $SERVERS; do
  U="${URL[$s]}"; P="${SPID[$s]}"
  quiet "lat_nonstream_$s"
  step "lat_nonstream_$s" 300 "${B[@]}" latency --url "$U" --agent bench --n "$LAT_N" --warmup 20 --pid "$P" --fake-pid "$FAKE_PID"
  quiet "lat_stream_$s"
  step "lat_stream_$s" 300 "${B[@]}" latency --url "$U" --agent bench --stream --n $(( LAT_N / 3 )) --warmup 10 --pid "$P" --fake-pid "$FAKE_PID"
  step "lat_paced_$s" 120 "${B[@]}" latency --url "$U" --agent bench-paced --stream --n 5 --warmup 1 --pid "$P" --fake-pid "$FAKE_PID"
  grep -E 'VmRSS|VmHWM' "/proc/$P/status" > "$OUT/rss_warm_$s.txt"
done
check_alive

# ---------------------------------------------------------------- 5 wrk
for mode in nonstream stream; do
  if [ "$mode" = stream ]; then S=(--stream); else S=(); fi
  for c in 1 8 64; do
    for s in $SERVERS; do
      quiet "wrk_${mode}_c${c}_$s"
      step "wrk_${mode}_c${c}_$s" $(( WRK_DUR + 90 )) "${B[@]}" wrk --url "${URL[$s]}" --agent bench "${S[@]}" \
        --conns "$c" --duration "$WRK_DUR" --pid "${SPID[$s]}" --fake-pid "$FAKE_PID"
    done
    check_alive
  done
done
# Paced model (20 ms per token, ~1 s per run): CPU per separately arriving token, from
# enough runs (16 in flight for WRK_DUR s) that /proc's 10 ms CPU ticks do not matter.
for s in $SERVERS; do
  quiet "wrk_paced_c16_$s"
  step "wrk_paced_c16_$s" $(( WRK_DUR + 90 )) "${B[@]}" wrk --url "${URL[$s]}" --agent bench-paced --stream \
    --conns 16 --duration "$WRK_DUR" --pid "${SPID[$s]}" --fake-pid "$FAKE_PID"
done
check_alive

# ---------------------------------------------------------------- 6 history (run N+1 with the whole transcript)
for s in $SERVERS; do
  U="${URL[$s]}"; P="${SPID[$s]}"
  quiet "history_$s"
  step "history${HISTORY_N}_$s" 600 "${B[@]}" history --url "$U" --agent bench-hist-all --n "$HISTORY_N" \
    --fake "$FAKE" --db "${DB[$s]}" --pid "$P" --fake-pid "$FAKE_PID"
  SESS="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["session_id"])' "$OUT/history${HISTORY_N}_$s.json" 2>/dev/null)"
  if [ -n "$SESS" ]; then
    # 20 more runs on the same session (runs N+2 .. N+21): p50 and server CPU per run
    step "history_tail_$s" 300 "${B[@]}" latency --url "$U" --agent bench-hist-all --session-id "$SESS" \
      --n 20 --warmup 0 --pid "$P" --fake-pid "$FAKE_PID"
  fi
  sleep 2
  grep -E 'VmRSS|VmHWM' "/proc/$P/status" > "$OUT/rss_end_$s.txt"
  ls -l "${DB[$s]}"* > "$OUT/db_files_$s.txt" 2>&1
done
check_alive
for s in $SERVERS; do stop_pid "${SPID[$s]}"; done
SPID=()

# ---------------------------------------------------------------- 7 in-flight memory
# A fresh server per level (earlier load's retained heap would hide growth), 10 warm-up
# streaming runs, then N streaming runs of ~10 s (bench-slow: 10 tokens, 1 per second).
for n in $INFLIGHT_LEVELS; do
  for s in $SERVERS; do
    start_server "$s" "$OUT/${s}_server.log"
    "${B[@]}" latency --url "${URL[$s]}" --agent bench --stream --n 10 --warmup 0 > /dev/null 2>>"$OUT/stderr.txt"
    quiet "inflight_${n}_$s"
    step "inflight_${n}_$s" 60 "${B[@]}" inflight --url "${URL[$s]}" --agent bench-slow --n "$n" --timeout 20 --pid "${SPID[$s]}"
    check_alive
    stop_pid "${SPID[$s]}"; SPID=()
  done
done
# The same at the top level with every model call over one HTTP/2 connection (agentos).
n="${INFLIGHT_LEVELS##* }"
start_server agentos "$OUT/agentos_server.log"
"${B[@]}" latency --url "${URL[agentos]}" --agent bench --stream --n 10 --warmup 0 > /dev/null 2>>"$OUT/stderr.txt"
quiet "inflight_h2_${n}_agentos"
step "inflight_h2_${n}_agentos" 60 "${B[@]}" inflight --url "${URL[agentos]}" --agent bench-slow-h2 --n "$n" --timeout 20 --pid "${SPID[agentos]}"
stop_pid "${SPID[agentos]}"; SPID=()

# ---------------------------------------------------------------- 7b 10,000 runs in flight
# agentos alone (INFLIGHT_MAX=0 skips): N streaming runs of 40 s held open at once in one
# process, the model over HTTP/2 so they need N client connections but one model
# connection. The load generator is one Python process; it raises its own fd limit.
INFLIGHT_MAX="${INFLIGHT_MAX:-10000}"
if [ "$INFLIGHT_MAX" -gt 0 ]; then
  "$AGENTOS_BIN" serve --port "$AOS_PORT" --max-runs "$INFLIGHT_MAX" \
    --max-connections $(( INFLIGHT_MAX + 1000 )) >> "$OUT/agentos_server.log" 2>&1 &
  p=$!; STARTED_PIDS+=("$p"); SPID[agentos]=$p
  wait_http "${URL[agentos]}/health" 60 || { log "agentos did not start"; exit 1; }
  "${B[@]}" latency --url "${URL[agentos]}" --agent bench --stream --n 10 --warmup 0 > /dev/null 2>>"$OUT/stderr.txt"
  quiet "inflight_max_agentos"
  step "inflight_max_agentos" 300 "${B[@]}" inflight --url "${URL[agentos]}" --agent bench-long-h2 \
    --n "$INFLIGHT_MAX" --timeout 150 --pid "${SPID[agentos]}"
  stop_pid "${SPID[agentos]}"; SPID=()
fi
stop_pid "$FAKE_PID"

# ---------------------------------------------------------------- 8 summary
"$PY" - "$OUT" "$WRK_DUR" "$HISTORY_N" "$INFLIGHT_LEVELS" > "$OUT/summary.md" <<'EOF'
import json, os, sys
d, wrk_dur, hist_n, levels = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), [int(x) for x in sys.argv[4].split()]
TOKENS = 50
def j(n):
    try:
        with open(os.path.join(d, n + ".json")) as f:
            return json.load(f)
    except Exception:
        return None
def kv(n):
    try:
        return {l.split(":")[0]: int(l.split()[1]) for l in open(os.path.join(d, n + ".txt"))}
    except Exception:
        return {}
def g(r, *path):
    for p in path:
        if r is None:
            return None
        r = r.get(p) if isinstance(r, dict) else None
    return r
def fnum(v, unit="", nd=None):
    if v is None:
        return "—"
    if nd is None:
        nd = 0 if abs(v) >= 100 else (1 if abs(v) >= 10 else 2)
    return ("{:,.%df}" % nd).format(v) + unit
rows = []
def factor(a, b, better):
    if not (isinstance(a, (int, float)) and isinstance(b, (int, float)) and a and b):
        return None
    return b / a if better == "higher" else a / b
def ffac(f, note=""):
    return ("%s×%s" % (fnum(f, nd=1 if f < 100 else 0), note)) if f else "—"
def verdict(target, ok):
    if not target:
        return ""
    return target + ("" if ok is None else (" ✓" if ok else " ✗"))
def row(what, a, b, better, unit="", target=None, ok=None):
    """better: 'higher' (factor = agentos/agno) or 'lower' (factor = agno/agentos)."""
    rows.append((what, fnum(a, unit), fnum(b, unit), ffac(factor(a, b, better)), verdict(target, ok)))
def raw(what, a, b, fac="", target=""):
    rows.append((what, a, b, fac, target))
def le(v, lim):
    return None if v is None else v <= lim

A, R = "agno", "agentos"
W = lambda m, c, s: j("wrk_%s_c%d_%s" % (m, c, s))
# throughput and loaded latency
for m, label, tgt in (("nonstream", "non-streaming", 30), ("stream", "streaming", 50)):
    for c in (1, 8, 64):
        wa, wb = W(m, c, A), W(m, c, R)
        row("%s runs/s, wrk c=%d (%d s)" % (label, c, wrk_dur), g(wa, "rps"), g(wb, "rps"), "higher")
        pa, pb = g(wa, "latency_ms", "p50"), g(wb, "latency_ms", "p50")
        raw("… c=%d latency p50 / p99" % c,
            "%s / %s ms" % (fnum(pa), fnum(g(wa, "latency_ms", "p99"))),
            "%s / %s ms" % (fnum(pb), fnum(g(wb, "latency_ms", "p99"))), ffac(factor(pa, pb, "lower"), " (p50)"))
    pk = {s: max([g(W(m, c, s), "rps") or 0 for c in (1, 8, 64)]) or None for s in (A, R)}
    f = factor(pk[A], pk[R], "higher")
    row("**%s peak runs/s** (best of c=1/8/64)" % label, pk[A], pk[R], "higher",
        target="≥ %d×" % tgt, ok=(None if f is None else f >= tgt))
# sequential latency
la, lb = j("lat_nonstream_" + A), j("lat_nonstream_" + R)
row("non-streaming run, sequential (one keep-alive connection), p50", g(la, "total_ms", "p50"), g(lb, "total_ms", "p50"), "lower", " ms")
row("… p99", g(la, "total_ms", "p99"), g(lb, "total_ms", "p99"), "lower", " ms")
sa, sb = j("lat_stream_" + A), j("lat_stream_" + R)
row("streaming run (50 tokens), sequential: first SSE event p50", g(sa, "first_event_ms", "p50"), g(sb, "first_event_ms", "p50"), "lower", " ms")
row("… **time to first content** (`RunContent`) p50", g(sa, "first_content_ms", "p50"), g(sb, "first_content_ms", "p50"), "lower", " ms")
row("… first content p99", g(sa, "first_content_ms", "p99"), g(sb, "first_content_ms", "p99"), "lower", " ms")
row("… **total** (last byte) p50", g(sa, "total_ms", "p50"), g(sb, "total_ms", "p50"), "lower", " ms")
row("… total p99", g(sa, "total_ms", "p99"), g(sb, "total_ms", "p99"), "lower", " ms")
raw("… SSE events / bytes per run", "%s / %s B" % (g(sa, "events_per_run"), g(sa, "bytes_per_run")),
    "%s / %s B" % (g(sb, "events_per_run"), g(sb, "bytes_per_run")))
pa_, pb_ = j("lat_paced_" + A), j("lat_paced_" + R)
raw("paced stream (model 20 ms/token): first content / total p50",
    "%s / %s ms" % (fnum(g(pa_, "first_content_ms", "p50")), fnum(g(pa_, "total_ms", "p50"))),
    "%s / %s ms" % (fnum(g(pb_, "first_content_ms", "p50")), fnum(g(pb_, "total_ms", "p50"))))
# CPU
cpu = lambda m, c, s: g(W(m, c, s), "server_cpu_ms_per_run")
for c in (1, 8, 64):
    a, b = cpu("nonstream", c, A), cpu("nonstream", c, R)
    row("**server CPU per non-streaming run** (incl. store write), wrk c=%d" % c, a, b, "lower", " ms",
        target="≤ 0.2 ms", ok=le(b, 0.2))
for c in (1, 8, 64):
    a, b = cpu("stream", c, A), cpu("stream", c, R)
    row("server CPU per streaming run, wrk c=%d" % c, a, b, "lower", " ms")
for c in (1, 8, 64):
    a, b = cpu("stream", c, A), cpu("stream", c, R)
    a = a * 1000 / TOKENS if a else None
    b = b * 1000 / TOKENS if b else None
    row("**… per streamed token** (CPU per streaming run / %d), c=%d" % (TOKENS, c), a, b, "lower", " µs",
        target="≤ 10 µs", ok=le(b, 10))
for c in (1, 8, 64):
    a = (cpu("stream", c, A) or 0) - (cpu("nonstream", c, A) or 0)
    b = (cpu("stream", c, R) or 0) - (cpu("nonstream", c, R) or 0)
    row("… streaming minus non-streaming CPU, per token, c=%d" % c, a * 1000 / TOKENS if cpu("stream", c, A) else None,
        b * 1000 / TOKENS if cpu("stream", c, R) else None, "lower", " µs")
wpa, wpb = j("wrk_paced_c16_" + A), j("wrk_paced_c16_" + R)
a, b = g(wpa, "server_cpu_ms_per_run"), g(wpb, "server_cpu_ms_per_run")
raw("paced stream, wrk c=16 (%s / %s runs): runs/s" % (g(wpa, "requests"), g(wpb, "requests")),
    fnum(g(wpa, "rps")), fnum(g(wpb, "rps")), ffac(factor(g(wpa, "rps"), g(wpb, "rps"), "higher")))
raw("**paced stream: CPU per run / per separately arriving token**, wrk c=16",
    "%s ms / %s µs" % (fnum(a), fnum(a * 1000 / TOKENS if a else None)),
    "%s ms / %s µs" % (fnum(b), fnum(b * 1000 / TOKENS if b else None)),
    ffac(factor(a, b, "lower")), verdict("≤ 20 µs", le(b * 1000 / TOKENS if b else None, 20)))
wa, wb = W("nonstream", 64, A), W("nonstream", 64, R)
raw("cores the server kept busy, non-streaming wrk c=64 (machine: %s cores)" % os.cpu_count(),
    fnum(g(wa, "server_cpu_util")), fnum(g(wb, "server_cpu_util")), "")
# connections to the model; the fake counts every TCP connection it accepts, the one the
# `GET /stats` that reads the counters came on too: it is not the server's.
ca, cb = j("connections_" + A), j("connections_" + R)
ra, rb = j("conn_runs_" + A), j("conn_runs_" + R)
server_conns = lambda c: None if g(c, "connections") is None else g(c, "connections") - 1
raw("**model connections opened per 100 sequential runs** (%s / %s runs)" % (g(ra, "n"), g(rb, "n")),
    fnum(server_conns(ca)), fnum(server_conns(cb)), "", verdict("1", None if cb is None else server_conns(cb) == 1))
# memory
mib = lambda v: v / 1024 if v else None
ia, ib = kv("rss_idle_" + A).get("VmRSS"), kv("rss_idle_" + R).get("VmRSS")
row("**RSS idle** (just started)", mib(ia), mib(ib), "lower", " MiB", target="≤ 15 MiB", ok=le(mib(ib), 15))
def rss_max(s):
    v = [g(W(m, c, s), "rss_max_kib") for m in ("nonstream", "stream") for c in (1, 8, 64)]
    v = [x for x in v if x]
    return max(v) / 1024 if v else None
row("RSS max under load (all wrk steps)", rss_max(A), rss_max(R), "lower", " MiB")
ea, eb = kv("rss_end_" + A).get("VmRSS"), kv("rss_end_" + R).get("VmRSS")
row("RSS after the whole suite (before in-flight tests)", mib(ea), mib(eb), "lower", " MiB")
for n in levels:
    a, b = j("inflight_%d_%s" % (n, A)), j("inflight_%d_%s" % (n, R))
    top = n == max(levels)
    what = "per in-flight streaming run, N=%d held open (in flight when sampled: %s / %s)" % (
        n, g(a, "in_flight_when_sampled"), g(b, "in_flight_when_sampled"))
    row(("**%s**" % what) if top else what, g(a, "kib_per_inflight_run"), g(b, "kib_per_inflight_run"), "lower", " KiB",
        target="≤ 16 KiB" if top else None, ok=le(g(b, "kib_per_inflight_run"), 16) if top else None)
h2 = j("inflight_h2_%d_%s" % (max(levels), R))
raw("… the same, N=%d, model over HTTP/2 (one model connection for all runs)" % max(levels), "—",
    fnum(g(h2, "kib_per_inflight_run"), " KiB"), "", verdict("≤ 16 KiB", le(g(h2, "kib_per_inflight_run"), 16)))
mx = j("inflight_max_" + R)
if mx:
    raw("**%s streaming runs in flight in one process** (model over HTTP/2): in flight when sampled / ok" % fnum(g(mx, "n")),
        "not run", "%s / %s" % (fnum(g(mx, "in_flight_when_sampled")), fnum(g(mx, "ok"))), "",
        verdict("all", g(mx, "ok") == g(mx, "n") and g(mx, "in_flight_when_sampled") == g(mx, "n")))
    raw("… RSS idle → in flight, threads, KiB per run, seconds until all streaming", "—",
        "%s → %s MiB, %s threads, %s KiB, %s s" % (fnum(mib(g(mx, "rss_idle_kib"))), fnum(mib(g(mx, "rss_inflight_kib"))),
            g(mx, "threads_inflight"), fnum(g(mx, "kib_per_inflight_run")), fnum(g(mx, "seconds_until_all_streaming"))), "")
# start-up
for kind in ("fresh", "existing"):
    a, b = g(j("startup_%s_%s" % (kind, A)), "ms", "p50"), g(j("startup_%s_%s" % (kind, R)), "ms", "p50")
    what = "start-up, spawn to GET /health 200, %s db (p50)" % kind
    row(("**%s**" % what) if kind == "fresh" else what, a, b, "lower", " ms", target="≤ 20 ms", ok=le(b, 20))
# history
ha, hb = j("history%d_%s" % (hist_n, A)), j("history%d_%s" % (hist_n, R))
row("**run %d of a full-history session** (%s model messages, %s / %s B sent)" % (
        hist_n + 1, g(hb, "run_n_plus_1_model_messages") or g(ha, "run_n_plus_1_model_messages"),
        g(ha, "run_n_plus_1_model_body_bytes"), g(hb, "run_n_plus_1_model_body_bytes")),
    g(ha, "run_n_plus_1_ms"), g(hb, "run_n_plus_1_ms"), "lower", " ms")
row("… runs 1–5 of that session (p50)", g(ha, "first_5_runs_ms_p50"), g(hb, "first_5_runs_ms_p50"), "lower", " ms")
def ratio(h):
    a, b = g(h, "run_n_plus_1_ms"), g(h, "first_5_runs_ms_p50")
    return a / b if a and b else None
row("… run %d / runs 1–5" % (hist_n + 1), ratio(ha), ratio(hb), "lower", "×",
    target="≤ 1.5×", ok=le(ratio(hb), 1.5))
ta, tb = j("history_tail_" + A), j("history_tail_" + R)
ca, cb = g(ta, "server_cpu_ms_per_run"), g(tb, "server_cpu_ms_per_run")
raw("… runs %d–%d: p50 / server CPU per run" % (hist_n + 2, hist_n + 21),
    "%s / %s ms" % (fnum(g(ta, "total_ms", "p50")), fnum(ca)),
    "%s / %s ms" % (fnum(g(tb, "total_ms", "p50")), fnum(cb)), ffac(factor(ca, cb, "lower"), " (CPU)"))

print("results: `%s`\n" % d)
if not os.path.exists(os.path.join(d, "rss_idle_agno.txt")):
    print("The reference Agno app was not available: agentos alone was measured, the Agno column is empty.\n")
print("| measurement | Agno AgentOS | agentos | agentos better by | target (agentos) |")
print("|---|---|---|---|---|")
for r in rows:
    print("| %s |" % " | ".join(str(x) for x in r))
# errors and noise
print()
errs = []
for f in sorted(os.listdir(d)):
    if f.startswith(("wrk_", "inflight_", "conn_runs_")) and f.endswith(".json"):
        r = j(f[:-5])
        if r is None:
            errs.append("%s: no result" % f[:-5])
        elif r.get("errors"):
            errs.append("%s: %s" % (f[:-5], r["errors"]))
        elif f.startswith("inflight_") and r.get("ok") != r.get("n"):
            errs.append("%s: ok %s of %s" % (f[:-5], r.get("ok"), r.get("n")))
print("errors: " + ("; ".join(errs) if errs else "none (every wrk request 2xx, every in-flight run 200)"))
noisy = []
for f in sorted(os.listdir(d)):
    if f.startswith("quiet_") and f.endswith(".json"):
        q = json.load(open(os.path.join(d, f)))
        if q["other_busy_cores"] > 0.25:
            noisy.append("%s (%.2f)" % (f[6:-5], q["other_busy_cores"]))
print("steps that started with other tenants' load > 0.25 cores: " + (", ".join(noisy) or "none"))
util = []
for m in ("nonstream", "stream"):
    for c in (1, 8, 64):
        for s in (A, R):
            r = j("wrk_%s_c%d_%s" % (m, c, s))
            if r:
                util.append("%s %s c=%d: server %.2f cores, fake %.3f ms/run, machine %.2f, others %.2f" % (
                    s, m, c, r["server_cpu_util"], r.get("fake_llm_cpu_ms_per_run") or 0,
                    r.get("machine_busy_cores") or 0, r.get("other_busy_cores_est") or 0))
print("\nwrk CPU accounting (cores busy during each step):\n" + "\n".join("- " + u for u in util))
EOF
cat "$OUT/summary.md"
log "done: $OUT"

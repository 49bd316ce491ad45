#!/usr/bin/env bash
# agentos on one store, several servers: one server on SQLite, one and two servers on
# PostgreSQL, the same fake model, the same machine, one run.
#
#   bash bench/cluster.sh             # wrk 10 s per step
#   QUICK=1 bash bench/cluster.sh     # wrk 5 s per step
#
# Steps (loopback only; every process is stopped on exit):
#   1  builds agentos and examples/fake_llm.rs in release (SKIP_BUILD=1 skips)
#   2  starts the fake OpenAI-compatible model (50 tokens, 0 ms think time)
#   3  for each setup — sqlite-1 (one server, SQLite file), pg-1 (one server,
#      PostgreSQL), pg-2 (two servers, one PostgreSQL database, load split evenly) —
#      wrk at c=64 non-streaming and streaming: runs/s (summed over the servers),
#      p50/p99 latency, server CPU per run
#   4  two servers on one store (SQLite file, then PostgreSQL): cross-server cancel
#      latency (a run streaming on A cancelled through B, until A's client sees
#      RunCancelled) and resume lag (a paced run on A followed through B's /resume)
#   5  the journal's cost: the paced stream (20 ms per token) at c=16 on SQLite with
#      journals on (AGENTOS_FLUSH_INTERVAL_MS=100) and off (0): CPU per streamed token
#   6  one markdown table -> stdout and $OUT/summary.md
#
# Needs PostgreSQL at $PG_ADMIN (default postgres://postgres@127.0.0.1:5432/test); each
# run creates database agentos_bench_<pid> and drops it. Python 3 and wrk, as compare.sh.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRIVER="$REPO/bench/driver"
QUICK="${QUICK:-0}"
if [ "$QUICK" = 1 ]; then DUR=5; CROSS_N=20; RESUME_N=3; else DUR=10; CROSS_N=50; RESUME_N=6; fi
OUT="${OUT:-$REPO/target/bench-cluster/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d /tmp/agentos-cluster.XXXXXX)"
PG_ADMIN="${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/test}"
PG_DB="agentos_bench_$$"
PG_URL="${PG_ADMIN%/*}/$PG_DB"
PY="${PY:-python3}"
STARTED=()

cleanup() {
  for p in "${STARTED[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  sleep 0.5
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" | tee -a "$OUT/log.txt" >&2; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { local i; for i in $(seq 1 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; return 1; }

command -v psql >/dev/null || { echo "cluster.sh: psql is needed to create the bench database" >&2; exit 1; }
psql "$PG_ADMIN" -qc "CREATE DATABASE $PG_DB" || { echo "cluster.sh: PostgreSQL not reachable at $PG_ADMIN" >&2; exit 1; }

TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  log "cargo build --release"
  (cd "$REPO" && cargo build --release --quiet --bin agentos --example fake_llm) || exit 1
fi
BIN="$TARGET/release/agentos"; FAKE_BIN="$TARGET/release/examples/fake_llm"

FAKE_PORT=$(free_port); FAKE="http://127.0.0.1:$FAKE_PORT"
"$FAKE_BIN" --port "$FAKE_PORT" --tokens 50 --threads 2 > "$OUT/fake.log" 2>&1 &
STARTED+=("$!"); FAKE_PID=$!
wait_http "$FAKE/health" || { log "fake model did not start"; exit 1; }

cat > "$WORK/agents.toml" <<EOF
[providers.fake]
base_url = "$FAKE/v1"
[providers.fake-paced]
base_url = "$FAKE/cfg/delay_ms=20/v1"
[providers.fake-slow]
base_url = "$FAKE/cfg/tokens=10,delay_ms=1000/v1"
[[agents]]
id = "bench"
model = "fake:fake-model"
instructions = "Be concise, reply with one sentence."
[[agents]]
id = "bench-paced"
model = "fake-paced:fake-model"
instructions = "Be concise, reply with one sentence."
[[agents]]
id = "bench-slow"
model = "fake-slow:fake-model"
instructions = "Be concise, reply with one sentence."
EOF
export AGENTOS_CONFIG="$WORK/agents.toml" OPENAI_API_KEY=sk-fake
B=("$PY" "$DRIVER/bench_runs.py")

# start_server DB [env...] -> prints "pid port"
start_server() {
  local db="$1"; shift
  local port; port=$(free_port)
  env "$@" AGENTOS_DB="$db" "$BIN" serve --port "$port" >> "$OUT/servers.log" 2>&1 &
  local pid=$!; STARTED+=("$pid")
  wait_http "http://127.0.0.1:$port/health" || { log "server on $db did not start"; tail -5 "$OUT/servers.log" >&2; exit 1; }
  echo "$pid $port"
}

# wrk_setup NAME MODE server... : wrk at c=64 on each server at once, 64/N connections each
wrk_setup() {
  local name="$1" mode="$2"; shift 2
  local n=$# i=0 S=(); [ "$mode" = stream ] && S=(--stream)
  local pids=()
  for sp in "$@"; do
    set -- $sp
    "${B[@]}" wrk --url "http://127.0.0.1:$2" --agent bench "${S[@]}" --conns $((64 / n)) \
      --duration "$DUR" --pid "$1" --fake-pid "$FAKE_PID" > "$OUT/wrk_${name}_${mode}_$i.json" 2>>"$OUT/stderr.txt" &
    pids+=("$!"); i=$((i + 1))
  done
  wait "${pids[@]}"
}

SQLITE_DB="$WORK/agentos.db"
log "sqlite-1"
read -r P1 PORT1 < <(start_server "$SQLITE_DB")
curl -s -X POST "http://127.0.0.1:$PORT1/agents/bench/runs" -F message=warm -F stream=false >/dev/null
for m in nonstream stream; do wrk_setup sqlite1 "$m" "$P1 $PORT1"; done
read -r P2 PORT2 < <(start_server "$SQLITE_DB")
log "cross-server on SQLite"
"${B[@]}" cross --a "http://127.0.0.1:$PORT1" --b "http://127.0.0.1:$PORT2" --n "$CROSS_N" --n-resume "$RESUME_N" \
  > "$OUT/cross_sqlite.json" 2>>"$OUT/stderr.txt"
kill "$P1" "$P2"; wait "$P1" "$P2" 2>/dev/null

log "journal cost (SQLite, paced stream at c=16)"
for flush in 100 0; do
  read -r P PORT < <(start_server "$SQLITE_DB" AGENTOS_FLUSH_INTERVAL_MS=$flush)
  "${B[@]}" wrk --url "http://127.0.0.1:$PORT" --agent bench-paced --stream --conns 16 --duration "$DUR" \
    --pid "$P" --fake-pid "$FAKE_PID" > "$OUT/journal_$flush.json" 2>>"$OUT/stderr.txt"
  kill "$P"; wait "$P" 2>/dev/null
done

log "pg-1"
read -r P1 PORT1 < <(start_server "$PG_URL")
curl -s -X POST "http://127.0.0.1:$PORT1/agents/bench/runs" -F message=warm -F stream=false >/dev/null
for m in nonstream stream; do wrk_setup pg1 "$m" "$P1 $PORT1"; done
log "pg-2"
read -r P2 PORT2 < <(start_server "$PG_URL")
curl -s -X POST "http://127.0.0.1:$PORT2/agents/bench/runs" -F message=warm -F stream=false >/dev/null
for m in nonstream stream; do wrk_setup pg2 "$m" "$P1 $PORT1" "$P2 $PORT2"; done
log "cross-server on PostgreSQL"
"${B[@]}" cross --a "http://127.0.0.1:$PORT1" --b "http://127.0.0.1:$PORT2" --n "$CROSS_N" --n-resume "$RESUME_N" \
  > "$OUT/cross_pg.json" 2>>"$OUT/stderr.txt"
kill "$P1" "$P2"; wait "$P1" "$P2" 2>/dev/null

"$PY" - "$OUT" <<'EOF' > "$OUT/summary.md"
import glob, json, os, sys
d = sys.argv[1]
def j(path):
    try:
        return json.load(open(path))
    except Exception:
        return None
def f(v, nd=1):
    return "—" if v is None else ("{:,.%df}" % nd).format(v)
print("results: `%s`\n" % d)
print("| setup | mode | runs/s | p50 / p99 ms | server CPU per run ms |")
print("|---|---|---|---|---|")
for name, label in (("sqlite1", "1 server, SQLite"), ("pg1", "1 server, PostgreSQL"), ("pg2", "2 servers, PostgreSQL")):
    for mode in ("nonstream", "stream"):
        parts = [j(p) for p in sorted(glob.glob(os.path.join(d, "wrk_%s_%s_*.json" % (name, mode))))]
        parts = [p for p in parts if p]
        if not parts:
            continue
        rps = sum(p.get("rps") or 0 for p in parts)
        p50 = max(p["latency_ms"]["p50"] for p in parts)
        p99 = max(p["latency_ms"]["p99"] for p in parts)
        cpu = sum((p.get("server_cpu_ms_per_run") or 0) for p in parts) / len(parts)
        errs = [p.get("errors") for p in parts if p.get("errors")]
        print("| %s | %s | %s | %s / %s | %s%s |" % (label, mode, f(rps, 0), f(p50), f(p99), f(cpu, 3),
              (" (errors: %s)" % errs) if errs else ""))
print()
print("| two servers on one store | cancel latency p50 / p99 ms | resume lag p50 / p99 ms |")
print("|---|---|---|")
for name, label in (("cross_sqlite", "SQLite file"), ("cross_pg", "PostgreSQL")):
    c = j(os.path.join(d, name + ".json")) or {}
    cl, rl = c.get("cancel_latency_ms") or {}, c.get("resume_lag_ms") or {}
    print("| %s | %s / %s (n=%s) | %s / %s (n=%s) |" % (label, f(cl.get("p50")), f(cl.get("p99")), cl.get("n"),
          f(rl.get("p50")), f(rl.get("p99")), rl.get("n")))
print()
on, off = j(os.path.join(d, "journal_100.json")), j(os.path.join(d, "journal_0.json"))
def per_token(r):
    v = r and r.get("server_cpu_ms_per_run")
    return v * 1000 / 50 if v else None
print("| paced stream (20 ms/token), c=16, SQLite | runs/s | CPU per run ms | CPU per streamed token µs |")
print("|---|---|---|---|")
for label, r in (("journal every 100 ms", on), ("journal off", off)):
    print("| %s | %s | %s | %s |" % (label, f(r and r.get("rps")), f(r and r.get("server_cpu_ms_per_run"), 3), f(per_token(r))))
EOF
cat "$OUT/summary.md"
log "done: $OUT"

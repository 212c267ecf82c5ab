# Shared set-up for scripts/demo and scripts/test: a virtualenv with the pinned packages,
# and PostgreSQL / Redis reachable (started when installed but stopped).
# Sourced, not run. Every failure says what is missing and how to get it.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PGEVENTS_VENV:-$ROOT/.venv}"
PYBIN="$VENV/bin/python"

# Each line carries the seconds since the script started, so a slow step shows in CI's log.
say() { printf '[pgevents %ds] %s\n' "$SECONDS" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

find_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

# ensure_venv [REQUIREMENTS [PIN...]]: $VENV with REQUIREMENTS (default requirements.txt)
# installed, each PIN (e.g. Django==4.2.30) replacing the pin of the same package; re-installs
# only when something changed. The demo installs the runtime; scripts/test requirements-test.txt.
ensure_venv() {
  local reqs="${1:-requirements.txt}"
  shift || true
  if [ ! -x "$PYBIN" ]; then
    local py
    py="$(find_python)" || die "Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)."
    say "creating virtualenv in $VENV ($("$py" --version))"
    "$py" -m venv "$VENV" || die "could not create a virtualenv (Debian: apt-get install python3-venv)."
  fi
  local stamp="$VENV/.pgevents-$(basename "$reqs").sha256" want have
  want="$( (cat "$ROOT/requirements.txt" "$ROOT/$reqs"; echo "$*") | sha256sum | cut -c1-64)"
  have="$(cat "$stamp" 2>/dev/null || true)"
  if [ "$want" != "$have" ]; then
    say "installing pinned packages ($reqs${*:+ with $*}) into $VENV"
    local file="$ROOT/$reqs" pin
    if [ $# -gt 0 ]; then  # the requirements with their -r includes inlined, then the pins applied
      file="$VENV/pgevents-requirements.txt"
      sed -n 's/^-r *//p' "$ROOT/$reqs" | while read -r inc; do cat "$ROOT/$inc"; done > "$file"
      grep -v '^-r' "$ROOT/$reqs" >> "$file"
      for pin in "$@"; do
        sed -i "s/^${pin%%==*}==.*/$pin/I" "$file"
      done
    fi
    "$PYBIN" -m pip install --quiet --disable-pip-version-check -r "$file" ||
      die "pip install failed; see the output above."
    echo "$want" > "$stamp"
  fi
}

# Services this script started, stopped again by stop_started_services (on exit). Servers that
# were already running are never stopped.
STARTED_PG_CLUSTERS=()
STARTED_REDIS_PIDFILE=""
STARTED_EMBEDDED_PGDATA=""

stop_started_services() {
  local cluster
  if [ -n "$STARTED_REDIS_PIDFILE" ] && [ -f "$STARTED_REDIS_PIDFILE" ]; then
    say "stopping the redis-server this script started (pid $(cat "$STARTED_REDIS_PIDFILE"))"
    kill "$(cat "$STARTED_REDIS_PIDFILE")" 2>/dev/null || true
    STARTED_REDIS_PIDFILE=""
  fi
  if [ -n "$STARTED_EMBEDDED_PGDATA" ]; then
    say "stopping the embedded PostgreSQL ($STARTED_EMBEDDED_PGDATA)"
    "$PYBIN" -m demo_project.embedded_pg stop "$STARTED_EMBEDDED_PGDATA" >/dev/null 2>&1 || true
    STARTED_EMBEDDED_PGDATA=""
  fi
  for cluster in "${STARTED_PG_CLUSTERS[@]}"; do
    say "stopping PostgreSQL $cluster (started by this script)"
    pg_ctlcluster --skip-systemctl-redirect $cluster stop 2>/dev/null || pg_ctlcluster $cluster stop 2>/dev/null || true
  done
  STARTED_PG_CLUSTERS=()
  if [ -n "${STARTED_PGDATA:-}" ]; then
    pg_ctl -D "$STARTED_PGDATA" stop >/dev/null 2>&1 || true
    STARTED_PGDATA=""
  fi
}

# --- PostgreSQL ---------------------------------------------------------------------------
pg_reachable() {  # $1: libpq conninfo or URL
  "$PYBIN" - "$1" <<'PY' 2>/dev/null
import sys, psycopg
psycopg.connect(sys.argv[1], connect_timeout=3).close()
PY
}

start_local_postgres() {
  if command -v pg_ctlcluster >/dev/null 2>&1 && command -v pg_lsclusters >/dev/null 2>&1; then
    local version
    for version in $(ls /etc/postgresql 2>/dev/null); do
      say "starting PostgreSQL $version (cluster main)"
      if pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null ||
        pg_ctlcluster "$version" main start 2>/dev/null; then
        STARTED_PG_CLUSTERS+=("$version main")
      fi
    done
  elif command -v pg_ctl >/dev/null 2>&1 && [ -n "${PGDATA:-}" ]; then
    say "starting PostgreSQL in $PGDATA"
    pg_ctl -D "$PGDATA" -l "$PGDATA/server.log" start >/dev/null 2>&1 && STARTED_PGDATA="$PGDATA"
  else
    return 1
  fi
  for _ in $(seq 1 30); do pg_reachable "$1" && return 0; sleep 0.5; done
  return 1
}

# Sets DATABASE_URL to a reachable server: the one given, the local one, or (with
# $1 = embedded) an embedded server from the pgserver package.
ensure_postgres() {
  local mode="${1:-required}"
  if [ -n "${DATABASE_URL:-}" ]; then
    pg_reachable "$DATABASE_URL" || die "DATABASE_URL=$DATABASE_URL is not reachable."
    return 0
  fi
  local local_url="postgresql://postgres@127.0.0.1:5432/postgres"
  if [ "${PGEVENTS_EMBEDDED:-0}" = 1 ] && [ "$mode" = embedded ]; then
    : # forced: skip the local server
  elif pg_reachable "$local_url" || start_local_postgres "$local_url"; then
    export DATABASE_URL="postgresql://postgres@127.0.0.1:5432/${PGEVENTS_DB:-pgevents}"
    "$PYBIN" - "$local_url" "${PGEVENTS_DB:-pgevents}" <<'PY' || die "could not create the database."
import sys, psycopg
from psycopg import sql
with psycopg.connect(sys.argv[1], autocommit=True) as c:
    if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (sys.argv[2],)).fetchone():
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(sys.argv[2])))
PY
    return 0
  fi
  if [ "$mode" = embedded ]; then
    local pgdata="${PGEVENTS_PGDATA:-$ROOT/.pgevents/pgdata}"
    say "starting an embedded PostgreSQL (pgserver) in $pgdata"
    STARTED_EMBEDDED_PGDATA="$pgdata"
    DATABASE_URL="$("$PYBIN" -m demo_project.embedded_pg start "$pgdata")" ||
      die "the embedded PostgreSQL (pgserver) did not start."
    export DATABASE_URL
    return 0
  fi
  die "PostgreSQL is not reachable at 127.0.0.1:5432 and could not be started.
  Install it (Debian: apt-get install postgresql) or set DATABASE_URL=postgresql://user@host:port/db"
}

# --- Redis --------------------------------------------------------------------------------
redis_reachable() {
  "$PYBIN" - "$1" <<'PY' 2>/dev/null
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=2).ping()
PY
}

# Sets REDIS_URL to a reachable server; with $1 = optional, leaves it unset when there is none.
ensure_redis() {
  local mode="${1:-required}"
  if [ -n "${REDIS_URL:-}" ]; then
    redis_reachable "$REDIS_URL" || die "REDIS_URL=$REDIS_URL is not reachable."
    return 0
  fi
  if [ "$mode" = optional ] && [ "${PGEVENTS_EMBEDDED:-0}" = 1 ]; then return 0; fi
  local port="${PGEVENTS_REDIS_PORT:-6379}"
  local url="redis://127.0.0.1:$port/0"
  if ! redis_reachable "$url" && command -v redis-server >/dev/null 2>&1; then
    say "starting redis-server on 127.0.0.1:$port"
    mkdir -p "$ROOT/.pgevents"
    local pidfile="$ROOT/.pgevents/redis-$port.pid"
    if redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
      --pidfile "$pidfile" --dir "$ROOT/.pgevents" --logfile "$ROOT/.pgevents/redis-$port.log" >/dev/null 2>&1; then
      STARTED_REDIS_PIDFILE="$pidfile"
    fi
    for _ in $(seq 1 20); do redis_reachable "$url" && break; sleep 0.25; done
  fi
  if redis_reachable "$url"; then
    export REDIS_URL="$url"
    return 0
  fi
  [ "$mode" = optional ] && return 0
  die "Redis is not reachable at 127.0.0.1:$port and could not be started.
  Install it (Debian: apt-get install redis-server) or set REDIS_URL=redis://host:port/0"
}

# --- Chromium (browser tests) ---------------------------------------------------------------
#: The browser client's own tests run on Node's built-in test runner (node --test, Node >= 20):
#: nothing from npm. Debian's nodejs is installed when missing and we are root; otherwise the
#: run stops and says so (PGEVENTS_SKIP_NODE=1 leaves those tests out, and says that too).
ensure_node() {
  if command -v node >/dev/null 2>&1 && node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's nodejs for the client's tests (tests/js)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs) >/dev/null 2>&1 &&
      command -v node >/dev/null 2>&1 && return 0
  fi
  die "the client's tests (tests/js) need Node.js >= 20 (node --test): apt-get install nodejs (or set PGEVENTS_SKIP_NODE=1 to leave them out)."
}

ensure_chromium() {
  if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's chromium for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 &&
      return 0
  fi
  die "the browser tests need Chromium: apt-get install chromium (or set PGEVENTS_SKIP_BROWSER=1)."
}

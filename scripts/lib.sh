# Shared set-up for scripts/demo and scripts/test: a virtualenv with the pinned packages,
# and PostgreSQL / Redis reachable (started when installed but stopped).
# Sourced, not run. Every failure says what is missing and how to get it.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PGEVENTS_VENV:-$ROOT/.venv}"
PYBIN="$VENV/bin/python"

say() { printf '[pgevents] %s\n' "$*" >&2; }
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

ensure_venv() {
  if [ ! -x "$PYBIN" ]; then
    local py
    py="$(find_python)" || die "Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)."
    say "creating virtualenv in $VENV ($("$py" --version))"
    "$py" -m venv "$VENV" || die "could not create a virtualenv (Debian: apt-get install python3-venv)."
  fi
  local want have
  want="$(sha256sum "$ROOT/requirements.txt" | cut -c1-64)"
  have="$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)"
  if [ "$want" != "$have" ]; then
    say "installing pinned packages (requirements.txt)"
    "$PYBIN" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements.txt" ||
      die "pip install failed; see the output above."
    echo "$want" > "$VENV/.requirements.sha256"
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
      pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null ||
        pg_ctlcluster "$version" main start 2>/dev/null || true
    done
  elif command -v pg_ctl >/dev/null 2>&1 && [ -n "${PGDATA:-}" ]; then
    say "starting PostgreSQL in $PGDATA"
    pg_ctl -D "$PGDATA" -l "$PGDATA/server.log" start >/dev/null 2>&1 || true
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
    say "starting an embedded PostgreSQL (pgserver) in .pgevents/pgdata"
    DATABASE_URL="$("$PYBIN" -m demo_project.embedded_pg "$ROOT/.pgevents/pgdata")" ||
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
  local url="redis://127.0.0.1:6379/0"
  if ! redis_reachable "$url" && command -v redis-server >/dev/null 2>&1; then
    say "starting redis-server on 127.0.0.1:6379"
    mkdir -p "$ROOT/.pgevents"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir "$ROOT/.pgevents" --logfile "$ROOT/.pgevents/redis.log" >/dev/null 2>&1 || true
    for _ in $(seq 1 20); do redis_reachable "$url" && break; sleep 0.25; done
  fi
  if redis_reachable "$url"; then
    export REDIS_URL="$url"
    return 0
  fi
  [ "$mode" = optional ] && return 0
  die "Redis is not reachable at 127.0.0.1:6379 and could not be started.
  Install it (Debian: apt-get install redis-server) or set REDIS_URL=redis://host:port/0"
}

# --- Chromium (browser tests) ---------------------------------------------------------------
ensure_chromium() {
  if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's chromium for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 &&
      return 0
  fi
  die "the browser tests need Chromium: apt-get install chromium (or set PGEVENTS_SKIP_BROWSER=1)."
}

# Shared set-up steps of scripts/up and scripts/test. Each step is idempotent and quick when
# there is nothing to do, so both commands work on a fresh machine and on a warm one.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# ensure_apt PKG...: install the Debian packages that are missing, without starting their
# daemons (our tests start their own sshd/named/nginx on loopback ports).
ensure_apt() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod +x "$policy"; created=1
  fi
  as_root apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || { [ $created = 1 ] && as_root rm -f "$policy"; die "apt-get install ${missing[*]} failed"; }
  [ $created = 1 ] && as_root rm -f "$policy"
  return 0
}

# ensure_venv [dev]: a virtual environment with the project installed (editable); reinstalls
# only when pyproject.toml changed.
ensure_venv() {
  local extra="${1:-}" py stamp want
  py="$(command -v python3.11 || command -v python3)" || die "python3 (3.11 or newer) is needed"
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python 3.11 or newer is needed, found $("$py" --version)"
  [ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$py" -m venv "$VENV"; }
  stamp="$VENV/.sitedesk-installed"
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)-${extra}"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing Python dependencies into .venv"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    local spec="$ROOT"; [ -n "$extra" ] && spec="$ROOT[$extra]"
    "$VENV/bin/python" -m pip install -q -e "$spec" 2>&1 | grep -v -e '^WARNING: Location' -e 'neither a file' >&2 || true
    "$VENV/bin/python" -c 'import gateway.cli, store.db, cluster.ray_runtime' || die "installing the project failed"
    echo "$want" > "$stamp"
  fi
}

# ensure_postgres: the PostgreSQL the tests use (127.0.0.1:5432, trust auth, database `test`).
ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    ensure_apt postgresql postgresql-client
  fi
  local ver; ver="$(ls /etc/postgresql | sort -V | tail -n1)"
  local hba="/etc/postgresql/$ver/main/pg_hba.conf"
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  say "starting PostgreSQL $ver"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
  pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL did not start on 127.0.0.1:5432"
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE test" >/dev/null
}

# ensure_redis: the Redis the tests use (127.0.0.1:6379).
ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return 0; fi
  ensure_apt redis-server redis-tools
  say "starting Redis on 127.0.0.1:6379"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 40); do redis-cli -p 6379 ping >/dev/null 2>&1 && return 0; sleep 0.25; done
  die "Redis did not start on 127.0.0.1:6379"
}

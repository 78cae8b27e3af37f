# Shared set-up steps for bin/run, bin/test and .ci/run. Sourced, not run.

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

ensure_postgres() {
  # Only when the platform is configured for the local PostgreSQL (CI and our machines).
  if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    step "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
}

ensure_redis() {
  if command -v redis-server >/dev/null && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    step "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
  fi
}

ensure_venv() {
  if [ ! -x .venv/bin/python ]; then
    step "creating the virtualenv"
    python3 -m venv .venv
  fi
  if [ ! -f .venv/.installed ] || ! cmp -s requirements.txt .venv/.installed; then
    step "installing requirements.txt"
    .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
    cp requirements.txt .venv/.installed
  fi
}

ensure_chromium() {
  # The browser tests drive Debian's Chromium (no browser downloads are possible here).
  if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    step "installing Debian's chromium for the browser tests"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } \
      || echo "chromium could not be installed; browser tests will be skipped"
  fi
  # Chinese in the screenshots of the admin (zh-hans is first-class): a CJK font.
  if command -v chromium >/dev/null && ! fc-list :lang=zh 2>/dev/null | grep -q . \
    && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    step "installing a CJK font for the browser tests' screenshots"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-noto-cjk >/dev/null 2>&1 \
      || echo "fonts-noto-cjk could not be installed; Chinese shows as boxes in screenshots"
  fi
}

ensure_database() {
  # ensure_database NAME: create the PostgreSQL database if it is missing.
  local name="$1"
  if [ "$(psql -h 127.0.0.1 -U root -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$name'")" != 1 ]; then
    createdb -h 127.0.0.1 -U root "$name"
  fi
}

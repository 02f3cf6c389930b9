#!/usr/bin/env bash
# Install the Debian packages the test suite needs (servers the fixtures start), when missing.
# Runs apt-get only as root; otherwise it just reports what is missing.
set -euo pipefail

# The PostgreSQL *server* programs, looked for the way tests/pg.py looks for them. Debian keeps
# them in /usr/lib/postgresql/<ver>/bin, off PATH; postgresql-client alone ships that directory
# without initdb/pg_ctl/postgres, so the directory existing is not enough.
pg_server_dirs() {
  if [ -n "${MIMAMORI_PG_BIN:-}" ]; then
    echo "$MIMAMORI_PG_BIN"
    return
  fi
  local exe
  if exe=$(command -v pg_ctl); then
    dirname "$exe"
    dirname "$(readlink -f "$exe")"
  fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null || true
}

have_pg_server() {
  local dir
  while read -r dir; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then return 0; fi
  done < <(pg_server_dirs)
  return 1
}

need=()
if ! have_pg_server; then
  if [ -n "${MIMAMORI_PG_BIN:-}" ]; then
    echo "MIMAMORI_PG_BIN=$MIMAMORI_PG_BIN has no initdb/pg_ctl/postgres" >&2
  else
    need+=(postgresql)
  fi
fi
# curl: the block-list test polls the feeds the way a UTM-side script would (tests/share)
if ! command -v curl >/dev/null 2>&1; then need+=(curl); fi
# chromium (and Japanese fonts for the SME portal): the browser tests drive Debian's chromium
# with Playwright (tests/web/test_browser.py); Playwright's own browser downloads are never used
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then need+=(chromium); fi
if ! ls /usr/share/fonts/opentype/noto/NotoSansCJK-* >/dev/null 2>&1; then need+=(fonts-noto-cjk); fi
# collect tests (tests/collect): a JetStream server, and rsyslog (with TLS) as a real sender
if ! command -v nats-server >/dev/null 2>&1; then need+=(nats-server); fi
if [ ! -x /usr/sbin/rsyslogd ] && ! command -v rsyslogd >/dev/null 2>&1; then need+=(rsyslog); fi
if ! compgen -G "/usr/lib/*/rsyslog/lmnsd_gtls.so" >/dev/null && ! compgen -G "/usr/lib/rsyslog/lmnsd_gtls.so" >/dev/null; then
  need+=(rsyslog-gnutls)
fi
if ! command -v logger >/dev/null 2>&1; then need+=(bsdutils); fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing missing packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if ! have_pg_server; then
    echo "installed ${need[*]} but found no PostgreSQL server programs" >&2
    exit 1
  fi
else
  echo "missing packages (install them, or run make test as root): ${need[*]}" >&2
fi

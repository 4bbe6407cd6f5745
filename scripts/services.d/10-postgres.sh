# PostgreSQL on 127.0.0.1:5432 (trust auth), and removal of earlier runs' test databases.
# Sourced by scripts/services.sh, which provides log, apt_install and wait_for.

postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then log "PostgreSQL is up"; return; fi
  if ! command -v pg_ctlcluster >/dev/null; then log "installing PostgreSQL"; apt_install postgresql; fi
  local version; version=$(ls /etc/postgresql | sort -V | tail -n1)
  if ! pg_lsclusters -h | grep -q "^$version main"; then pg_createcluster "$version" main >/dev/null; fi
  # Trust auth on loopback for the tests (as on our CI machines).
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for PostgreSQL 30 pg_isready -q -h 127.0.0.1 -p 5432
}

drop_stale_test_databases() {
  # Each test makes its own database; remove those of earlier runs.
  psql -h 127.0.0.1 -U postgres -d postgres -Atqc \
    "SELECT datname FROM pg_database WHERE datname LIKE 'troupe\_test\_%'" 2>/dev/null |
    while read -r db; do psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true; done
}

postgres
drop_stale_test_databases

# An external SMTP catcher for the mailer tests: aiosmtpd (from PyPI) on 127.0.0.1:2525,
# writing every mail it receives into a Maildir (TEST_SMTP_MAILDIR, /tmp/troupe-aiosmtpd/Maildir).
# Sourced by scripts/services.sh, which provides log, apt_install and wait_for.

smtp_catcher() {
  local addr=127.0.0.1 port=2525 base=/tmp/troupe-aiosmtpd py
  if (exec 3<>"/dev/tcp/$addr/$port") 2>/dev/null; then log "aiosmtpd is up"; return; fi
  if ! command -v python3 >/dev/null; then log "installing Python"; apt_install python3 python3-venv; fi
  if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
    if [ ! -x "$base/venv/bin/python" ] || ! "$base/venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
      log "installing aiosmtpd from PyPI"
      mkdir -p "$base"
      if ! python3 -m venv "$base/venv" 2>/dev/null; then apt_install python3-venv; python3 -m venv "$base/venv"; fi
      "$base/venv/bin/python" -m pip install -q aiosmtpd
    fi
    py="$base/venv/bin/python"
  else
    py=python3
  fi
  mkdir -p "$base/Maildir/tmp" "$base/Maildir/new" "$base/Maildir/cur"
  log "starting aiosmtpd on $addr:$port"
  nohup "$py" -m aiosmtpd -n -l "$addr:$port" -c aiosmtpd.handlers.Mailbox "$base/Maildir" \
    >"$base/aiosmtpd.log" 2>&1 &
  wait_for aiosmtpd 20 bash -c "exec 3<>/dev/tcp/$addr/$port"
}

smtp_catcher

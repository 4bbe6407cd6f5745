# Headless Chromium and its WebDriver (Debian's `chromium`, `chromium-driver`) for the web
# console's browser tests (http/tests/browser). Sourced by scripts/services.sh, which provides
# log and apt_install. Nothing is started here: each test spawns its own chromedriver.

chromium_for_tests() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    log "Chromium and chromedriver are installed"
    return
  fi
  log "installing Chromium and chromedriver"
  apt_install chromium chromium-driver fonts-dejavu-core
  command -v chromium >/dev/null && command -v chromedriver >/dev/null
}

chromium_for_tests

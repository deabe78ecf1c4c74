#!/usr/bin/env bash
# Install the headless browser that tests/test_serve_browser.py drives: Debian's chromium and
# chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver). Nothing is downloaded outside
# Debian's archive; the Python client (selenium) comes with the venv (pyproject's dev extras).
# Idempotent: does nothing when both are installed. Exit status 0 when the browser is usable,
# 1 (with a message on stderr) when it is not: scripts/test.sh reports that and carries on, and the
# browser test is then skipped with its reason.
set -uo pipefail

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

fail() { echo "install_browser: $*" >&2; exit 1; }

# A page rendered headless, not just a binary on disk (a broken install fails here, not in pytest).
smoke() {
  local out
  out=$(timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run \
        --dump-dom 'data:text/html,<p id=x>mrt-ok</p>' 2>/dev/null) || return 1
  [[ "$out" == *mrt-ok* ]] && "$CHROMEDRIVER" --version >/dev/null 2>&1
}

if [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; then
  smoke && { echo "install_browser: found $("$CHROMEDRIVER" --version | cut -d' ' -f1-2)"; exit 0; }
  fail "$CHROMIUM and $CHROMEDRIVER are installed but cannot render a page headless"
fi
[ "$(id -u)" = "0" ] || fail "chromium/chromedriver missing and not root: run 'apt-get install chromium chromium-driver' as root"
command -v apt-get >/dev/null || fail "chromium/chromedriver missing and no apt-get here: install Chromium and its ChromeDriver by hand"

start=$SECONDS
log=$(mktemp)
trap 'rm -f "$log"' EXIT
quiet_apt() {  # apt-get, silent unless it fails (then its last lines go to stderr); 10 min at most
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get "$@" >"$log" 2>&1 && return 0
  tail -n 15 "$log" >&2
  return 1
}
quiet_apt update -qq || echo "install_browser: warning: apt-get update failed; trying the package lists at hand" >&2
# Without recommends (printer tools, perl, samba libraries, daemons: about 120 packages a headless
# browser does not need); fonts-liberation for legible text in screenshots. If that minimal set
# cannot render a page, the recommended packages are added.
quiet_apt install -y -q --no-install-recommends chromium chromium-driver fonts-liberation \
  || fail "apt-get install chromium chromium-driver failed"
if ! smoke; then
  echo "install_browser: the minimal install cannot render a page; adding the recommended packages" >&2
  quiet_apt install -y -q chromium chromium-driver || fail "apt-get install chromium chromium-driver (with recommends) failed"
  smoke || fail "chromium is installed but cannot render a page headless"
fi
echo "install_browser: installed $("$CHROMEDRIVER" --version | cut -d' ' -f1-2) in $((SECONDS - start)) s"

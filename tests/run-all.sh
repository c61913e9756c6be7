#!/usr/bin/env bash
# Runs every chatterbox test: the Rust unit and integration tests, then the Node tests
# with the official clients and headless Chromium against the binary that the Rust
# tests built. Installs what is missing first: npm packages (npm ci) and, as root on
# Debian, Chromium and a Korean font for the page tests, redis-server for the
# cluster tests (tests/cluster.rs starts its own), nginx with its stream module,
# openssl and systemd's systemd-analyze for the deployment tests
# (js-client/test/deploy.test.mjs, rolling-restart.test.mjs); python-socketio in a venv.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nginx >/dev/null || missing+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)
command -v openssl >/dev/null || missing+=(openssl)
command -v systemd-analyze >/dev/null || missing+=(systemd)
if ! { command -v fc-list >/dev/null && fc-list : family | grep -i nanum >/dev/null; }; then
  missing+=(fonts-nanum)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing: ${missing[*]} (Debian: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

# npm ci when the installed packages are missing or older than the lockfile.
if [ ! -d js-client/node_modules/playwright-core ] \
  || [ js-client/package-lock.json -nt js-client/node_modules/.package-lock.json ]; then
  (cd js-client && npm ci --no-audit --no-fund)
fi

# python-socketio for the restart test (js-client/test/restart.test.mjs), in a venv of
# the tests' own, made anew when the pinned versions change.
venv=target/pyenv
if [ ! -x "$venv/bin/python" ] || [ js-client/test/python/requirements.txt -nt "$venv/.installed" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r js-client/test/python/requirements.txt
  touch "$venv/.installed"
fi

cargo test
# The soak (~45 s, ignored by plain `cargo test`).
cargo test --test soak -- --ignored
# Both binaries: cargo test builds chatterbox-bench (a workspace member of its own) only
# as its unit tests, and the Node docs check reads its --help.
cargo build --bins
(cd js-client && npm test)

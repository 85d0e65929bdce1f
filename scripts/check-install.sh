#!/usr/bin/env bash
# The newcomer's install, checked: a fresh clone of the committed HEAD, `npm ci` with an empty HOME and no npm_config_*
# variable (nothing inherited from this machine's npm setup: no cache, no nodedir, no user .npmrc), then proof that no
# native build ran (no node-gyp, no gyp build directories, no downloaded Node headers) and that the CLI works.
# Run by .ci/run before the tests; alone: bash scripts/check-install.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/home"
git clone --quiet --no-hardlinks "$repo" "$tmp/inferno"
cd "$tmp/inferno"
fail() {
  echo "check-install: $1" >&2
  exit 1
}
started=$(date +%s)
if ! env -i PATH="$PATH" HOME="$tmp/home" npm ci --no-audit --no-fund --foreground-scripts >"$tmp/npm-ci.log" 2>&1; then
  tail -40 "$tmp/npm-ci.log" >&2
  fail "npm ci failed in a fresh clone with an empty HOME (log above)"
fi
seconds=$(($(date +%s) - started))
if grep -Eiq "node-gyp|gyp info|gyp ERR|prebuild-install" "$tmp/npm-ci.log"; then
  grep -Ei "node-gyp|gyp info|gyp ERR|prebuild-install" "$tmp/npm-ci.log" | head -5 >&2
  fail "a native build ran during npm ci"
fi
gyp_dirs=$(find node_modules -name config.gypi -o -name binding.Makefile | head -5)
[ -z "$gyp_dirs" ] || fail "gyp build output in node_modules: $gyp_dirs"
[ ! -e "$tmp/home/.cache/node-gyp" ] || fail "Node headers were downloaded to \$HOME/.cache/node-gyp"
version=$(env -i PATH="$PATH" HOME="$tmp/home" node bin/inferno.js --version)
expected=$(node -p 'require("./package.json").version')
[ "$version" = "$expected" ] || fail "inferno --version printed '$version', expected '$expected'"
env -i PATH="$PATH" HOME="$tmp/home" node bin/inferno.js --help >/dev/null || fail "inferno --help failed"
echo "check-install: npm ci in a fresh clone with an empty HOME took ${seconds}s; no native build ran; inferno --version = $version"

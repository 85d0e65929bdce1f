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
if grep -q "Unknown project config\|Unknown user config" "$tmp/npm-ci.log"; then
  grep "Unknown .* config" "$tmp/npm-ci.log" | head -3 >&2
  fail "npm warned about an unknown config key (the onnxruntime-node CUDA skip lives in package.json overrides)"
fi
gyp_dirs=$(find node_modules -name config.gypi -o -name binding.Makefile | head -5)
[ -z "$gyp_dirs" ] || fail "gyp build output in node_modules: $gyp_dirs"
[ ! -e "$tmp/home/.cache/node-gyp" ] || fail "Node headers were downloaded to \$HOME/.cache/node-gyp"
version=$(env -i PATH="$PATH" HOME="$tmp/home" node bin/inferno.js --version)
expected=$(node -p 'require("./package.json").version')
[ "$version" = "$expected" ] || fail "inferno --version printed '$version', expected '$expected'"
env -i PATH="$PATH" HOME="$tmp/home" node bin/inferno.js --help >/dev/null || fail "inferno --help failed"
# What the README's first steps do: npx runs this clone's CLI (not the unrelated `inferno` registry package), and the
# demo model generates through the llama.cpp binary the install brought (one thread: the machine may be busy).
npx_version=$(env -i PATH="$PATH" HOME="$tmp/home" npx --no-install inferno-ai --version 2>/dev/null) || fail "npx inferno-ai --version failed"
[ "$npx_version" = "$expected" ] || fail "npx inferno-ai --version printed '$npx_version', expected '$expected'"
env -i PATH="$PATH" HOME="$tmp/home" node bin/inferno.js models demo >/dev/null 2>&1 || fail "inferno models demo failed"
answer=$(env -i PATH="$PATH" HOME="$tmp/home" INFERNO_SERVER__PORT=1 node bin/inferno.js run inferno-demo "Hello" --max-tokens 8 --threads 1 --local 2>"$tmp/run.log") ||
  { cat "$tmp/run.log" >&2; fail "inferno run inferno-demo failed"; }
[ -n "$answer" ] || fail "inferno run inferno-demo printed no answer"
echo "check-install: npm ci in a fresh clone with an empty HOME took ${seconds}s; no native build ran; inferno --version = $version; npx inferno-ai and the demo model answer"

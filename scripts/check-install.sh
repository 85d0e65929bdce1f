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
# A project that installs the packed clone as a dependency (docs/library.md): the tarball installs from the registry
# alone, its `inferno` bin runs, the library example runs as written from ESM, CommonJS can require the package, and
# TypeScript (strict, node16 resolution, no skipLibCheck) accepts the example against the published declarations.
started=$(date +%s)
tarball="$(npm pack --ignore-scripts --silent --pack-destination "$tmp")"
mkdir "$tmp/user"
cd "$tmp/user"
user() { env -i PATH="$PATH" HOME="$tmp/home" ONNXRUNTIME_NODE_INSTALL=skip "$@"; }
printf '{ "name": "user", "version": "1.0.0", "private": true, "type": "module" }\n' >package.json
user npm install --no-audit --no-fund "$tmp/$tarball" typescript@~5.9 @types/node@20 >"$tmp/npm-user.log" 2>&1 ||
  { tail -40 "$tmp/npm-user.log" >&2; fail "npm install of the packed tarball failed in a new project (log above)"; }
[ "$(user npx --no-install inferno --version)" = "$expected" ] || fail "the installed package's inferno bin failed"
awk '/^```ts$/ { n++; next } /^```$/ { if (n == 1) exit } n == 1' "$repo/docs/library.md" >example.ts
cp example.ts example.mjs
user node example.mjs >"$tmp/example.log" 2>&1 || { cat "$tmp/example.log" >&2; fail "docs/library.md's example failed"; }
printf 'const { ModelCache } = require("inferno-ai");\nif (typeof ModelCache.new !== "function") process.exit(1);\n' >require.cjs
user node require.cjs || fail "require(\"inferno-ai\") failed from CommonJS"
printf '{ "compilerOptions": { "module": "node16", "target": "es2022", "strict": true, "noEmit": true }, "files": ["example.ts"] }\n' >tsconfig.json
user npx --no-install tsc -p . >&2 || fail "TypeScript refused docs/library.md's example against the published declarations"
echo "check-install: npm ci in a fresh clone with an empty HOME took ${seconds}s; no native build ran; inferno --version = $version; npx inferno-ai and the demo model answer; the packed tarball installed into a new project, its bin, the library example (ESM, TypeScript) and require() work ($(($(date +%s) - started))s)"

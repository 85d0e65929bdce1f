#!/usr/bin/env node
// Runs the test suite with node's own runner. Node 20 does not expand globs for `--test` and runs nothing when given a
// directory, so this script finds the test files itself (`*.test.ts` under test/, and the tests of the shared helpers,
// the benchmark and the stress code beside them under testkit/, bench/ and stress/; or under the paths given as
// arguments), runs them, lists the slowest files (`SLOWEST_FILES`, 10 by default; 0 for none) and ends with a plain
// `N passed, N failed, N skipped` line that CI can read.
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;

function findTests(path) {
  const stat = statSync(path);
  if (stat.isFile()) return path.endsWith(".test.ts") ? [path] : [];
  return readdirSync(path, { withFileTypes: true })
    .filter((entry) => !entry.name.startsWith("."))
    .flatMap((entry) => findTests(join(path, entry.name)))
    .sort();
}

const targets = process.argv.slice(2);
const roots = ["test", "testkit", "bench", "stress"].map((dir) => join(root, dir));
const files = (targets.length > 0 ? targets : roots).flatMap((t) => findTests(t));
if (files.length === 0) {
  console.error(`no test files found under ${targets.join(", ") || "test/, testkit/, bench/, stress/"}`);
  process.exit(1);
}

// Each file's duration, from scripts/file-times.mjs (node's spec reporter names no files).
const timesDir = mkdtempSync(join(tmpdir(), "inferno-test-times-"));
const timesFile = join(timesDir, "times.tsv");

const args = [
  "--import",
  "tsx",
  "--test",
  "--test-reporter=spec",
  "--test-reporter-destination=stdout",
  `--test-reporter=${join(root, "scripts", "file-times.mjs")}`,
  `--test-reporter-destination=${timesFile}`,
  `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 2}`,
  // A hung test fails after this long instead of holding CI until its own limit.
  `--test-timeout=${process.env.TEST_TIMEOUT_MS ?? 180_000}`,
  ...files.map((f) => relative(process.cwd(), f)),
];
const child = spawn(process.execPath, args, {
  stdio: ["ignore", "pipe", "inherit"],
  env: { ...process.env, FORCE_COLOR: "0" },
});

// The runner's summary (`ℹ pass N`, …) comes before the failures are listed again, which can run long: its counts are
// kept as they pass by, line by line.
const summary = new Map();
let partial = "";
child.stdout.on("data", (chunk) => {
  process.stdout.write(chunk);
  const lines = (partial + chunk.toString()).split("\n");
  partial = lines.pop() ?? "";
  for (const line of lines) {
    const match = /^ℹ (\w+) (\d+)$/.exec(line.trim());
    if (match) summary.set(match[1], Number(match[2]));
  }
});
/** The `count` slowest files, slowest first, as `  61.7 s  test/server/slow-headers.test.ts` lines. */
function slowestFiles(count) {
  let text = "";
  try {
    text = readFileSync(timesFile, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((line) => line.includes("\t"))
    .map((line) => {
      const [ms, file] = line.split("\t");
      return { ms: Number(ms), file: relative(process.cwd(), file) };
    })
    .sort((a, b) => b.ms - a.ms)
    .slice(0, count)
    .map(({ ms, file }) => `${(ms / 1000).toFixed(1).padStart(6)} s  ${file}`);
}

child.on("close", (code, signal) => {
  const slowest = slowestFiles(Number(process.env.SLOWEST_FILES ?? 10));
  rmSync(timesDir, { recursive: true, force: true });
  if (slowest.length > 0) console.log(`slowest files:\n${slowest.join("\n")}`);
  const count = (name) => summary.get(name) ?? 0;
  const passed = count("pass");
  const failed = count("fail") + count("cancelled");
  const skipped = count("skipped") + count("todo");
  const ok = code === 0 && failed === 0 && passed > 0;
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(ok ? 0 : code || (signal ? 1 : 1));
});

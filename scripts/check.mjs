#!/usr/bin/env node
// The static checks `npm test` runs before the tests: the type check, the linters (ESLint, the dependency rules), the
// formatter and the generated docs. They are independent, so they run two at a time (the machine CI and the suite's
// budget assume has two cores); each one's output is printed whole when it ends, and any failure fails the whole.
import { spawn } from "node:child_process";

const CHECKS = ["typecheck", "lint", "format:check", "docs:check"];
const PARALLEL = Number(process.env.CHECK_CONCURRENCY ?? 2);
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

function run(script) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(npm, ["run", "--silent", script], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    child.on("close", (code) => {
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      const head = `${code === 0 ? "✔" : "✖"} npm run ${script} (${seconds} s)`;
      process.stdout.write(`${head}\n${output}${output === "" || output.endsWith("\n") ? "" : "\n"}`);
      resolve(code === 0);
    });
  });
}

const queue = [...CHECKS];
const results = await Promise.all(
  Array.from({ length: PARALLEL }, async () => {
    let ok = true;
    for (let script = queue.shift(); script !== undefined; script = queue.shift()) ok = (await run(script)) && ok;
    return ok;
  }),
);
process.exit(results.every(Boolean) ? 0 : 1);

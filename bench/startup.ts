/**
 * CLI start-up: the installed `inferno` (bin/inferno.js on the compiled dist/) answering `--version`, `--help`,
 * `config path` and a subcommand's `--help` (`run --help`) — commands that load no model and must never load llama.cpp,
 * ONNX Runtime or the configuration schema (test/cli/startup.test.ts checks which modules they load) — against `node -e 0`,
 * the floor any Node CLI pays. Target: within 2×. Runs are interleaved and the median of each is kept, so a burst of
 * other work on a shared machine does not land on one command only.
 *
 * Part of `npm run bench`; alone: `node --import tsx bench/startup.ts` (after `npm run build`, which `npm ci` runs).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { median, ratios } from "../testkit/stats.js";
import { type Figure, figure } from "./report.js";

let ROUNDS = 9;
const BIN = fileURLToPath(new URL("../bin/inferno.js", import.meta.url));

export async function startupBench(options: { quick: boolean } = { quick: false }): Promise<Figure[]> {
  if (options.quick) ROUNDS = 5;
  if (!existsSync(fileURLToPath(new URL("../dist/cli/main.js", import.meta.url)))) {
    throw new Error("dist/ is missing: run `npm run build` first (npm ci does it)");
  }
  const home = await mkdtemp(join(tmpdir(), "inferno-startup-"));
  try {
    const env = { PATH: process.env.PATH ?? "", HOME: home, XDG_CONFIG_HOME: join(home, "config") };
    const commands: Array<[string, string[]]> = [
      ["node -e 0", ["-e", "0"]],
      ["inferno --version", [BIN, "--version"]],
      ["inferno --help", [BIN, "--help"]],
      ["inferno config path", [BIN, "config", "path"]],
      ["inferno run --help", [BIN, "run", "--help"]],
    ];
    const samples = new Map<string, number[]>(commands.map(([label]) => [label, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const [label, args] of commands) {
        const start = performance.now();
        const result = spawnSync(process.execPath, args, { cwd: home, env, encoding: "utf8" });
        const ms = performance.now() - start;
        if (result.status !== 0) throw new Error(`${label} exited ${result.status}: ${result.stderr}`);
        samples.get(label)?.push(ms);
      }
    }
    const floor = samples.get("node -e 0") ?? [];
    return commands.slice(1).map(([label]) => {
      const ms = samples.get(label) ?? [];
      return figure({
        section: "startup",
        name: label,
        samples: ratios(ms, floor),
        unit: "×",
        baseline: "node -e 0",
        target: { max: 2 },
        note: `${median(ms).toFixed(0)} ms vs ${median(floor).toFixed(0)} ms`,
      });
    });
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await startupBench());

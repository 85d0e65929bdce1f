/**
 * CLI start-up: the installed `inferno` (bin/inferno.js on the compiled dist/) answering `--version`, `--help`,
 * `config path` and a subcommand's `--help` (`run --help`) — commands that load no model and must never load llama.cpp,
 * ONNX Runtime or the configuration schema (test/cli/startup.test.ts checks which modules they load) — against `node -e 0`,
 * the floor any Node CLI pays. Target: within 2×. Runs are interleaved, in an order shuffled per round, and the median
 * of each is kept, so a burst of other work on a shared machine does not land on one command only; the floor runs
 * twice per round as two variants, the section's A/A control.
 *
 * Part of `npm run bench`; alone: `node --import tsx bench/startup.ts` (after `npm run build`, which `npm ci` runs).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freshSeed, median, ratios, roundOrders } from "../testkit/stats.js";
import { type Figure, figure, withControl } from "./report.js";

/** Rounds of a full run and of a quick one. */
const ROUNDS = { full: 9, quick: 5 };
const BIN = fileURLToPath(new URL("../bin/inferno.js", import.meta.url));

export async function startupBench(options: { quick: boolean; seed?: number } = { quick: false }): Promise<Figure[]> {
  const rounds = options.quick ? ROUNDS.quick : ROUNDS.full;
  if (!existsSync(fileURLToPath(new URL("../dist/cli/main.js", import.meta.url)))) {
    throw new Error("dist/ is missing: run `npm run build` first (npm ci does it)");
  }
  const home = await mkdtemp(join(tmpdir(), "inferno-startup-"));
  try {
    const env = { PATH: process.env.PATH ?? "", HOME: home, XDG_CONFIG_HOME: join(home, "config") };
    const commands: Array<[string, string[]]> = [
      ["node -e 0", ["-e", "0"]],
      // The A/A control: the floor again, as a variant of its own.
      ["node -e 0 (again)", ["-e", "0"]],
      ["inferno --version", [BIN, "--version"]],
      ["inferno --help", [BIN, "--help"]],
      ["inferno config path", [BIN, "config", "path"]],
      ["inferno run --help", [BIN, "run", "--help"]],
    ];
    const samples = new Map<string, number[]>(commands.map(([label]) => [label, []]));
    for (const order of roundOrders(commands.length, rounds, options.seed ?? freshSeed())) {
      for (const [label, args] of order.map((i) => commands[i] as [string, string[]])) {
        const start = performance.now();
        const result = spawnSync(process.execPath, args, { cwd: home, env, encoding: "utf8" });
        const ms = performance.now() - start;
        if (result.status !== 0) throw new Error(`${label} exited ${result.status}: ${result.stderr}`);
        samples.get(label)?.push(ms);
      }
    }
    const floor = samples.get("node -e 0") ?? [];
    const figures = commands.slice(2).map(([label]) => {
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
    return withControl("startup", ratios(samples.get("node -e 0 (again)") ?? [], floor), "node -e 0", figures);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await startupBench());

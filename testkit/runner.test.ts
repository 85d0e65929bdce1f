/** The bench and stress runner: the command line, the sections it runs, and the merge into a results file. */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { it } from "node:test";
import { keepOthers, mergeResultsFile, parseSelection, runSections } from "./runner.js";
import { tempDir } from "./tmp.js";

const NAMES = ["cache", "loads", "server"];

it("parseSelection: --quick or another spelling of it, --only in the runner's order", () => {
  const seed = ["--seed", "7"];
  assert.deepEqual(parseSelection("bench", seed, NAMES), { quick: false, only: undefined, seed: 7 });
  assert.deepEqual(parseSelection("bench", ["--quick", ...seed], NAMES), { quick: true, only: undefined, seed: 7 });
  assert.deepEqual(parseSelection("stress", ["--bounded", ...seed], NAMES, ["--bounded"]), {
    quick: true,
    only: undefined,
    seed: 7,
  });
  assert.deepEqual(parseSelection("bench", ["--only", "server,cache", ...seed], NAMES), {
    quick: false,
    only: ["cache", "server"],
    seed: 7,
  });
  // A name selects its family too (`fleet` → `fleet` and `fleet-sim`), never another name it merely starts.
  const family = ["fleet", "fleet-sim", "fleetwide"];
  assert.deepEqual(parseSelection("bench", ["--only", "fleet", ...seed], family), {
    quick: false,
    only: ["fleet", "fleet-sim"],
    seed: 7,
  });
  assert.deepEqual(parseSelection("bench", ["--only", "fleet-sim", ...seed], family), {
    quick: false,
    only: ["fleet-sim"],
    seed: 7,
  });
  // Without --seed, a fresh one each run (printed with it, so the run can be replayed).
  const fresh = parseSelection("bench", [], NAMES).seed;
  assert.ok(Number.isSafeInteger(fresh) && fresh >= 0);
});

it("runSections runs the selected sections in order, each with its run, and sums up the invocation", async () => {
  const ran: string[] = [];
  const sections = NAMES.map((name) => ({
    name,
    run: async (o: { quick: boolean; seed: number }) => `${name}:${o.quick}:${o.seed}`,
  }));
  const summary = await runSections(
    "test",
    sections,
    { quick: true, only: ["loads", "server"], seed: 5 },
    (name, result, run) => {
      ran.push(`${name}=${result}`);
      assert.equal(run.quick, true);
      assert.equal(run.seed, 5);
      assert.ok(run.seconds >= 0 && Number.isFinite(run.loadavg.before) && !Number.isNaN(Date.parse(run.date)));
    },
  );
  assert.deepEqual(ran, ["loads=loads:true:5", "server=server:true:5"]);
  assert.deepEqual(summary.sections, ["loads", "server"]);
  assert.equal(summary.quick, true);
});

it("runSections: a section that throws is named in the summary with its error, and the sections after it still run", async () => {
  const ran: string[] = [];
  const sections = NAMES.map((name) => ({
    name,
    run: async () => {
      if (name === "loads") throw new Error("dist/ is missing");
      return name;
    },
  }));
  const summary = await runSections("test", sections, { quick: true, only: undefined, seed: 1 }, (name) => {
    ran.push(name);
  });
  assert.deepEqual(ran, ["cache", "server"]);
  assert.deepEqual(summary.sections, ["cache", "server"]);
  assert.deepEqual(summary.failed, [{ section: "loads", error: "dist/ is missing" }]);
  const clean = await runSections("test", sections.slice(0, 1), { quick: true, only: undefined, seed: 1 }, () => {});
  assert.equal(clean.failed, undefined);
});

it("keepOthers keeps the sections that did not run, replaces those that did (even with nothing new)", () => {
  const previous = { cache: 1, loads: 2, server: 3 };
  assert.deepEqual(keepOthers(previous, { loads: 20 }), { cache: 1, server: 3, loads: 20 });
  assert.deepEqual(keepOthers(previous, {}, ["server"]), { cache: 1, loads: 2 });
  assert.deepEqual(keepOthers(undefined, { cache: 10 }), { cache: 10 });
});

it("mergeResultsFile builds on what the file holds (null for none or unreadable) and writes it whole", async (t) => {
  const file = join(await tempDir(t), "results", "latest.json");
  const seen: unknown[] = [];
  await mergeResultsFile(file, (previous) => (seen.push(previous), { a: 1 }));
  await mergeResultsFile(file, (previous) => (seen.push(previous), { ...(previous as object), b: 2 }));
  assert.deepEqual([...seen], [null, { a: 1 }]);
  assert.deepEqual(JSON.parse(await readFile(file, "utf8")), { a: 1, b: 2 });
  await writeFile(file, "{ not json");
  await mergeResultsFile(file, (previous) => (seen.push(previous), { c: 3 }));
  assert.equal(seen.at(-1), null);
});

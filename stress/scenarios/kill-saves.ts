/**
 * SIGKILL mid-save: a child process saves in a tight loop (save-loop.ts, the real file store) and is killed at a random
 * moment; then a fresh store starts on the directory as a restarted server would.
 *
 * After every kill: the state decodes (0 undecodable), holds every save the child completed and at most the one it was
 * killed in (0 lost saves), no temporary file is left once the store has started (0 stale temp files), and a save with
 * the store's default lock wait succeeds (0 false lock failures: a dead holder's lock is taken over, at once when its
 * owner record is there, after a short grace when the kill came before the record; the slowest start + save is printed).
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { access, readdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { FileStateStore, STATE_FILE_NAME } from "../../src/cache/persistence/file-store.js";
import { oneHit, stressModels } from "../state-fixtures.js";
import { StateLocked } from "../../src/errors/index.js";
import { type Scenario, seededRandom, Tally, withTempDir } from "../../testkit/scenario.js";

export interface KillParams {
  kills: number;
  /** Models in each save (more: longer saves, a larger file). */
  models: number;
  /** The kill lands this long (at most, uniformly) after the child's first completed save. */
  maxDelayMs: number;
}

const CHILD_SOURCE = fileURLToPath(new URL("./save-loop.ts", import.meta.url));
/** Inside node_modules, so the bundle's package imports resolve as the source's do. */
const CHILD_BUNDLE = fileURLToPath(new URL("../../node_modules/.cache/inferno-stress/save-loop.mjs", import.meta.url));

/**
 * The saving child as one JavaScript file (packages left as imports): it starts several times faster than through
 * tsx, which matters when hundreds are started and killed.
 */
async function bundleChild(): Promise<string> {
  await build({
    entryPoints: [CHILD_SOURCE],
    outfile: CHILD_BUNDLE,
    bundle: true,
    platform: "node",
    format: "esm",
    packages: "external",
    logLevel: "error",
  });
  return CHILD_BUNDLE;
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );
const temps = async (dir: string) => (await readdir(dir)).filter((f) => f.startsWith(`${STATE_FILE_NAME}.tmp-`)).length;

/** Starts the saving child, kills it `delayMs` after its first completed save; the number of saves it reported. */
async function killMidSave(script: string, dir: string, models: number, delayMs: number): Promise<number> {
  const child = spawn(process.execPath, [script, dir, String(models)], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
  const exited = once(child, "exit");
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
      if (out.includes("saved 1\n")) resolve();
    });
    void exited.then(() => reject(new Error(`the saving child exited before its first save: ${err}`)));
  });
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  child.kill("SIGKILL");
  await exited;
  return Math.max(0, ...[...out.matchAll(/saved (\d+)\n/g)].map((m) => Number(m[1])));
}

export async function killSaves(p: KillParams): Promise<ReturnType<Tally["result"]>> {
  const tally = new Tally();
  const random = seededRandom(200);
  const models = stressModels(p.models);
  for (const name of [
    "undecodable",
    "lost_saves",
    "stale_temp_files_after_start",
    "false_lock_failures",
    "other_save_failures",
  ])
    tally.set(name, 0);
  const script = await bundleChild();
  await withTempDir("kill", async (dir) => {
    const path = `${dir}/${STATE_FILE_NAME}`;
    await new FileStateStore(dir).save(oneHit(models));
    let hits = 1;
    for (let i = 0; i < p.kills; i++) {
      const saved = await killMidSave(script, dir, p.models, random() * p.maxDelayMs);
      tally.count("kills");
      tally.count("saves_completed_by_killed_children", saved);
      if (await exists(`${path}.lock`)) tally.count("kills_with_the_lock_held");
      if ((await temps(dir)) > 0) tally.count("kills_leaving_a_temp_file");

      // What a restarted server does: load (which cleans up), then save; with the store's default lock wait, but a
      // dead holder's lock is taken over (at once when it recorded itself; after a short grace when it was killed
      // before it could), so the wait never runs out.
      const started = performance.now();
      const store = new FileStateStore(dir);
      const { state, warning } = await store.load();
      if (
        !tally.check(
          state !== null && warning === null,
          () => `kill ${i}: the state did not load cleanly (${warning})`,
        ) ||
        state === null
      ) {
        tally.count("undecodable");
        return;
      }
      const found = state.counters.hits;
      // The save the child was killed in may or may not have reached its rename.
      if (
        !tally.check(
          found === hits + saved || found === hits + saved + 1,
          () => `kill ${i}: ${found} hits in the file, expected ${hits + saved} or one more`,
        )
      ) {
        tally.count("lost_saves", Math.max(0, hits + saved - found));
      }
      const left = await temps(dir);
      if (!tally.check(left === 0, () => `kill ${i}: ${left} temporary file(s) left after the next start`))
        tally.count("stale_temp_files_after_start", left);
      try {
        await store.save(oneHit(models));
        hits = found + 1;
        const ms = Math.round(performance.now() - started);
        tally.set("slowest_start_and_save_ms", Math.max(ms, Number(tally.figures.slowest_start_and_save_ms ?? 0)));
      } catch (error) {
        tally.count(error instanceof StateLocked ? "false_lock_failures" : "other_save_failures");
        const lockDir = await readdir(`${path}.lock`).catch((e: unknown) => String(e));
        tally.check(
          false,
          () => `kill ${i}: the next save failed: ${String(error)} (lock directory: ${JSON.stringify(lockDir)})`,
        );
        return;
      }
      tally.check(!(await exists(`${path}.lock`)), () => `kill ${i}: the lock is still there after the next save`);
    }
  });
  return tally.result();
}

export const killSavesScenario: Scenario<KillParams> = {
  name: "sigkill",
  title: "SIGKILL mid-save, then a fresh start: 0 undecodable, 0 lost saves, 0 stale temp files, 0 false lock failures",
  full: { kills: 220, models: 200, maxDelayMs: 40 },
  bounded: { kills: 5, models: 200, maxDelayMs: 40 },
  run: killSaves,
};

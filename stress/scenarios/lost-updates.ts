/**
 * A server and two CLI processes writing the one state file at the same time. The server answers requests for its
 * model and saves after each (`POST /v1/cache/save`: its delta merged under the lock); each CLI process (cli-writer.ts,
 * the CLI's own `main` in a process of its own, finding no server on its port so it works on the file) removes saved
 * entries one `inferno cache evict` at a time — a read-modify-write of the whole file under the lock.
 *
 * No update may be lost: at the end the file holds every request the server answered, and none of the entries the
 * CLI processes removed (a save that wrote back a stale copy would bring them back); no CLI command or save failed.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FileStateStore } from "../../src/cache/persistence/file-store.js";
import { replacingDelta } from "../../src/cache/persistence/merge.js";
import type { LastSave } from "../../src/cache/types.js";
import { type Scenario, Tally, withTempDir } from "../../testkit/scenario.js";
import { completion, withStressServer } from "../server.js";
import { stateWithModels } from "../state-fixtures.js";

export interface LostUpdateParams {
  /** Writes by each of the three processes: server saves, and evictions by each CLI process. */
  writes: number;
}

const MODEL = "tiny.gguf";
const WRITER = fileURLToPath(new URL("./cli-writer.ts", import.meta.url));

/** A loopback port nobody listens on (so the CLI finds no server there and works on the file). */
async function unusedPort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address() as { port: number };
  probe.close();
  return port;
}

/** Saved entries for models gone missing an hour ago (so a starting server changes nothing about them). */
async function seed(cacheDir: string, modelsDir: string, names: string[]): Promise<void> {
  const now = Date.now();
  const state = stateWithModels(
    now,
    names.map((name) => ({ key: join(modelsDir, name), name, missing_since: now - 3600_000 })),
  );
  await new FileStateStore(cacheDir).save(replacingDelta(state));
}

export async function lostUpdates(p: LostUpdateParams): Promise<ReturnType<Tally["result"]>> {
  const tally = new Tally();
  await withTempDir("lost", async (root) => {
    const cacheDir = join(root, "cache");
    const modelsDir = join(root, "models");
    const writers = ["a", "b"].map((w) => Array.from({ length: p.writes }, (_, i) => `cli-${w}-${i}.gguf`));
    await seed(cacheDir, modelsDir, writers.flat());
    let served = 0;
    let saveFailures = 0;
    await withStressServer({ root, models: [MODEL], cacheDir }, async (s) => {
      const env = {
        ...s.env,
        INFERNO_MODELS_DIR: modelsDir,
        INFERNO_CACHE__CACHE_DIR: cacheDir,
        INFERNO_SERVER__PORT: String(await unusedPort()),
      };
      const started = performance.now();
      const clis = writers.map((names) => {
        const child = spawn(process.execPath, ["--import", import.meta.resolve("tsx"), WRITER, ...names], {
          env,
          cwd: root,
          stdio: ["ignore", "pipe", "inherit"],
        });
        let out = "";
        child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
        return once(child, "exit").then(
          () => JSON.parse(out.trim().split("\n").pop() ?? "{}") as { codes?: number[]; failure?: string | null },
        );
      });
      const server = (async () => {
        for (let i = 0; i < p.writes; i++) {
          const answer = await s.post("/v1/completions", completion(MODEL));
          if (answer.status === 200) served++;
          const saved = (await s.post("/v1/cache/save", {})).body as LastSave;
          if (!saved.ok) {
            saveFailures++;
            tally.check(false, () => `server save ${i} failed: ${saved.error}`);
          }
        }
      })();
      const [results] = await Promise.all([Promise.all(clis), server]);
      tally.set("seconds", Number(((performance.now() - started) / 1000).toFixed(1)));
      results.forEach((r, k) => {
        const ok = (r.codes ?? []).filter((c) => c === 0).length;
        tally.set(`cli_${k + 1}_evictions_ok`, `${ok} of ${p.writes}`);
        tally.check(
          ok === p.writes,
          () => `CLI process ${k + 1}: ${p.writes - ok} commands failed (${r.failure ?? "no output"})`,
        );
      });
      tally.set("server_requests_served", served);
      tally.set("server_saves_ok", `${p.writes - saveFailures} of ${p.writes}`);
    });
    const state = (await new FileStateStore(cacheDir).read())?.state;
    const requests = state?.models.find((m) => m.name === MODEL)?.usage.requests ?? 0;
    const resurrected = state?.models.filter((m) => m.name.startsWith("cli-")).length ?? -1;
    tally.set("server_requests_in_file", requests);
    tally.set("lost_server_updates", served - requests);
    tally.set("lost_cli_updates", resurrected);
    tally.check(requests === served, () => `${requests} requests in the file, the server answered ${served}`);
    tally.check(resurrected === 0, () => `${resurrected} entries the CLI processes removed are back in the file`);
  });
  return tally.result();
}

export const lostUpdatesScenario: Scenario<LostUpdateParams> = {
  name: "lost-updates",
  title: "a server and two CLI processes writing the state file 100 times each: 0 lost updates",
  full: { writes: 100 },
  bounded: { writes: 10 },
  run: lostUpdates,
};

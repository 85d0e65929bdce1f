/**
 * Disks that fail a save: full (a 64 KiB tmpfs filled up), read-only (the tmpfs remounted read-only) and a cache
 * directory that vanished while the server ran. A real server on loopback serves a tiny model, saves through
 * `POST /v1/cache/save` and reports through `GET /v1/cache/stats`.
 *
 * Full and read-only: the save fails at once (well under the store's lock wait) with the real cause in
 * `last_save.error`, the previous file stays byte for byte, no temporary file is left, one warning per distinct cause;
 * once the disk is writable again the next save holds every request made meanwhile. Vanished: the next save creates
 * the directory again (0700) and the file (0600) with everything.
 *
 * Mounting needs root (and mount permission); without it the full and read-only parts are skipped with the reason.
 */
import { execFile } from "node:child_process";
import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { FileStateStore, STATE_FILE_NAME } from "../../src/cache/persistence/file-store.js";
import type { CacheStats, LastSave } from "../../src/cache/types.js";
import { type Scenario, Tally, withTempDir } from "../../testkit/scenario.js";
import { completion, type StressServer, withStressServer } from "../server.js";

const run = promisify(execFile);

export interface DiskParams {
  /** A failing save may take 3× a working save of the same run, and at least this long, to count as failing "at once". */
  atOnceMs: number;
}

const MODEL = "tiny.gguf";

/** Mounts a tmpfs of `size` at `dir`; null when it worked, else why not. */
async function mountTmpfs(dir: string, size: string): Promise<string | null> {
  if (process.getuid?.() !== 0) return "not root: mounting a small tmpfs needs root";
  try {
    await run("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0755`, "tmpfs", dir]);
    return null;
  } catch (error) {
    return `mount -t tmpfs failed: ${(error as { stderr?: string }).stderr?.trim() || String(error)}`;
  }
}

async function fill(dir: string): Promise<void> {
  const chunk = Buffer.alloc(4096, 1);
  for (let i = 0; ; i++) {
    try {
      await writeFile(join(dir, `filler-${i}`), chunk);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOSPC") return;
      throw error;
    }
  }
}

async function save(s: StressServer): Promise<LastSave> {
  const { body } = await s.post("/v1/cache/save", {});
  return body as LastSave;
}

async function requestsInFile(cacheDir: string): Promise<number> {
  const read = await new FileStateStore(cacheDir).read();
  return read?.state.models.find((m) => m.name === MODEL)?.usage.requests ?? 0;
}

const saveWarnings = (s: StressServer) => s.logs.filter((l) => l.level === 40 && /save/i.test(l.msg)).length;

/**
 * A save on a broken disk: it must fail at once with `cause` in `last_save.error` (also in /v1/cache/stats), leave the
 * previous file byte for byte and no temporary file; a second save failing the same way must not warn again.
 */
async function failingSave(
  tally: Tally,
  p: DiskParams,
  s: StressServer,
  name: string,
  cause: RegExp,
  normalSaveMs: number,
): Promise<void> {
  const path = join(s.cacheDir, STATE_FILE_NAME);
  const before = await readFile(path);
  await s.post("/v1/completions", completion(MODEL));
  const warningsBefore = saveWarnings(s);
  const started = performance.now();
  const failed = await save(s);
  const ms = Math.round(performance.now() - started);
  tally.set(`${name}_save_ms`, ms);
  tally.set(`${name}_error`, failed.error ?? "(none)");
  tally.check(failed.ok === false, () => `${name}: the save did not fail (${JSON.stringify(failed)})`);
  // At once: no waiting (the lock wait is 5 s) — as fast as a save that works, measured in the same run on this machine.
  const atOnce = Math.max(p.atOnceMs, 3 * normalSaveMs);
  tally.check(
    ms <= atOnce,
    () =>
      `${name}: the save took ${ms} ms to fail (at once means under ${atOnce} ms here: 3× a working save, at least ${p.atOnceMs})`,
  );
  tally.check(
    cause.test(failed.error ?? ""),
    () => `${name}: last_save.error does not name the real cause ${cause}: ${failed.error}`,
  );
  const stats = await s.getJson<CacheStats>("/v1/cache/stats");
  tally.check(
    stats.last_save.error === failed.error,
    () => `${name}: /v1/cache/stats last_save.error is ${stats.last_save.error}`,
  );
  tally.check((await readFile(path)).equals(before), () => `${name}: the previous state file changed`);
  const temps = (await readdir(s.cacheDir)).filter((f) => f.includes(".tmp-"));
  tally.check(temps.length === 0, () => `${name}: temporary files left: ${temps.join(", ")}`);
  await save(s);
  const warned = saveWarnings(s) - warningsBefore;
  tally.set(`${name}_warnings_for_two_failed_saves`, warned);
  tally.check(
    warned === 1,
    () => `${name}: ${warned} save warnings for this cause over two failed saves (expected 1: one per distinct cause)`,
  );
}

export async function disks(p: DiskParams): Promise<ReturnType<Tally["result"]>> {
  const tally = new Tally();
  await withTempDir("disks", async (root) => {
    const mount = join(root, "mnt");
    await mkdir(mount);
    const cannot = await mountTmpfs(mount, "64k");
    if (cannot !== null) tally.skip(`disk full and read-only: ${cannot}`);
    const cacheDir = cannot === null ? join(mount, "cache") : join(root, "cache");
    try {
      await withStressServer({ root, models: [MODEL], cacheDir }, async (s) => {
        await s.post("/v1/completions", completion(MODEL));
        const firstStarted = performance.now();
        const first = await save(s);
        const normalSaveMs = Math.round(performance.now() - firstStarted);
        tally.set("working_save_ms", normalSaveMs);
        tally.check(first.ok === true, () => `the first save failed: ${first.error}`);
        let requests = 1;
        if (cannot === null) {
          // Full, then (still full) read-only on top: two distinct causes in a row, then both repaired.
          await fill(mount);
          await failingSave(tally, p, s, "disk_full", /ENOSPC|no space/i, normalSaveMs);
          await run("mount", ["-o", "remount,ro", mount]);
          await failingSave(tally, p, s, "read_only", /EROFS|read-only/i, normalSaveMs);
          await run("mount", ["-o", "remount,rw", mount]);
          for (const f of await readdir(mount)) if (f.startsWith("filler-")) await rm(join(mount, f));
          const repaired = await save(s);
          tally.check(repaired.ok === true, () => `the save after the repair failed: ${repaired.error}`);
          requests += 2;
          const found = await requestsInFile(s.cacheDir);
          tally.set("requests_in_file_after_repair", `${found} of ${requests}`);
          tally.check(
            found === requests,
            () => `${found} requests in the file after the repair, expected ${requests} (none lost)`,
          );
        }
        // Vanished: the whole cache directory removed while the server runs.
        await rm(s.cacheDir, { recursive: true, force: true });
        await s.post("/v1/completions", completion(MODEL));
        const again = await save(s);
        tally.check(again.ok === true, () => `vanished directory: the save failed: ${again.error}`);
        const dirMode = ((await stat(s.cacheDir).catch(() => null))?.mode ?? 0) & 0o777;
        const fileMode = ((await stat(join(s.cacheDir, STATE_FILE_NAME)).catch(() => null))?.mode ?? 0) & 0o777;
        tally.set("vanished_dir_recreated_mode", dirMode.toString(8));
        tally.set("vanished_file_mode", fileMode.toString(8));
        tally.check(
          dirMode === 0o700 && fileMode === 0o600,
          () =>
            `vanished directory: recreated ${dirMode.toString(8)} / file ${fileMode.toString(8)}, expected 700 / 600`,
        );
        const found = await requestsInFile(s.cacheDir);
        // The recreated file starts from this server's unsaved delta: the request made since the last save.
        tally.check(found >= 1, () => `vanished directory: ${found} requests in the recreated file`);
        tally.set("vanished_requests_in_new_file", found);
      });
    } finally {
      if (cannot === null) await run("umount", ["-l", mount]).catch(() => {});
    }
  });
  return tally.result();
}

export const disksScenario: Scenario<DiskParams> = {
  name: "disks",
  title:
    "disk full (64 KiB tmpfs), read-only remount, vanished cache directory: saves fail at once with the real cause, nothing lost",
  full: { atOnceMs: 1000 },
  bounded: { atOnceMs: 1000 },
  run: disks,
};

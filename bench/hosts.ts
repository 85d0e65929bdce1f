/**
 * Which model-host entry the benchmarks measure, decided in one place: the compiled one (`dist/`), as an installed
 * Inferno runs it, when `npm run build` made it after the last change to the source; else the source under tsx, which
 * starts ~1 s slower (3.1–3.2 s against 2.0 s for a spare host here) and holds ~35 MiB more per host.
 */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Backends, createBackends } from "../src/backends/index.js";
import type { BackendConfig } from "../src/config/schema.js";

const BUILT_HOST = fileURLToPath(new URL("../dist/backends/host/main.js", import.meta.url));
const SOURCE = fileURLToPath(new URL("../src", import.meta.url));

/** The newest modification time (ms) of any file under `dir`. */
async function newestUnder(dir: string): Promise<number> {
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, (await stat(join(entry.parentPath, entry.name))).mtimeMs);
  }
  return newest;
}

export interface HostEntry {
  /**
   * What to give `HostedBackend` / `createBackends`: the compiled entry module, or none (the default: the source,
   * under tsx).
   */
  options: { entry?: string };
  /** What the tables say about it. */
  label: string;
}

export async function hostEntry(): Promise<HostEntry> {
  const [built, source] = await Promise.all([stat(BUILT_HOST).catch(() => null), newestUnder(SOURCE)]);
  if (built && built.mtimeMs >= source)
    return { options: { entry: BUILT_HOST }, label: "hosts from dist (as installed)" };
  return {
    options: {},
    label: `hosts from source under tsx (${built ? "dist/ is older than src/" : "no dist/"}: run \`npm run build\` to measure installed hosts)`,
  };
}

/** The real backends (`createBackends`) with `host`'s entry, for a runtime a benchmark creates. */
export function backendsWith(config: BackendConfig, host: HostEntry): Backends {
  return createBackends(config, host.options);
}

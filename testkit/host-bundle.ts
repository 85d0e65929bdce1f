/**
 * The model host's entry (src/backends/host/main.ts) as one JavaScript module, for tests whose servers run model hosts.
 * A host started from the TypeScript source runs under tsx, and so does the process node-llama-cpp forks from it to
 * check its binary: the bundle (the same source, packages left as imports, ~0.1 s to build) starts each host without
 * either tsx start. Spawned `inferno serve` processes start their hosts from their compiled tree (compiled-cli.ts);
 * test/server/isolation-memory.test.ts keeps the source's entry.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const SOURCE = fileURLToPath(new URL("../src/backends/host/main.ts", import.meta.url));
/** Inside node_modules, so the bundle's package imports resolve as the source's do. */
const DIR = fileURLToPath(new URL("../node_modules/.cache/inferno-test", import.meta.url));
/** How a bundle's path ends (named by its content, so test files running side by side share one file). */
export const HOST_BUNDLE_PATTERN = /inferno-test\/host-[0-9a-f]{16}\.mjs$/;

let bundle: Promise<string> | undefined;

async function buildBundle(): Promise<string> {
  const result = await build({
    entryPoints: [SOURCE],
    bundle: true,
    platform: "node",
    format: "esm",
    packages: "external",
    write: false,
    logLevel: "error",
  });
  const text = result.outputFiles[0]?.text ?? "";
  const path = join(DIR, `host-${createHash("sha256").update(text).digest("hex").slice(0, 16)}.mjs`);
  if (!existsSync(path)) {
    await mkdir(DIR, { recursive: true });
    const temporary = `${path}.${process.pid}.tmp`;
    await writeFile(temporary, text);
    await rename(temporary, path);
  }
  return path;
}

/** The bundled host entry (built once per process; the file is shared while the source is unchanged). */
export function hostBundle(): Promise<string> {
  bundle ??= buildBundle();
  return bundle;
}

/**
 * Finding model files under the models directory. A scan is remembered together with the modification time of every
 * directory it walked; a later lookup only re-stats those directories and rescans when one changed (a file added,
 * removed or renamed changes its directory's mtime), so lookups stay cheap and new files are found without a restart.
 */
import type { Dirent } from "node:fs";
import { readdir, realpath, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { formatOf } from "./name-index.js";
import { groupSplits, type SplitCandidate } from "./split.js";
import type { StoreName } from "../config/schema.js";
import type { LoadSettings } from "./load-settings.js";
import type { ModelDefaults, ModelFormat } from "./types.js";

/** A model found by a scan of a models directory or a store (its names, paths and parts: `SplitCandidate`). */
export interface FoundModel extends SplitCandidate {
  /** Hex sha256 the file must have (the digest an Ollama manifest names), verified before loading. */
  sha256?: string;
  /** The store the model was found in; absent in models directories. */
  store?: StoreName;
  /** An Ollama model's Modelfile (parameters, system message, Go template): how it loads and its defaults. */
  modelfile?: { load: LoadSettings; defaults: ModelDefaults; template?: string };
}

export interface Scan {
  /** Models inside the models directory (after following symlinks), in name order. */
  models: FoundModel[];
  /** Names of symlinks whose target lies outside the models directory, with that target. */
  escaping: Map<string, string>;
  /**
   * Every directory walked (and every metadata file read, in stores), with its mtime (ns) when scanned, or null when it
   * did not exist: a change of any of them makes the scan stale.
   */
  directories: Map<string, bigint | null>;
  /** Real path of the models directory, or null when it does not exist. */
  root: string | null;
}

export { formatOf };

/** Whether `path` is `root` or lies below it (both real, absolute paths). */
export function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !rel.startsWith(sep) && !/^[a-zA-Z]:/.test(rel));
}

function toName(root: string, path: string): string {
  return relative(root, path).split(sep).join("/");
}

export async function mtimeNs(path: string): Promise<bigint | null> {
  try {
    return (await stat(path, { bigint: true })).mtimeNs;
  } catch {
    return null;
  }
}

export interface ScanOptions {
  /**
   * The real directory symlink targets must lie in to count as inside (default: the scanned directory itself). The
   * Hugging Face cache scans a snapshot whose files link to the repository's `blobs/`, so it passes the repository.
   */
  within?: string;
}

/** Walks the models directory. Hidden entries are skipped and symlinked directories are not followed (no loops). */
export async function scanModels(modelsDir: string, options: ScanOptions = {}): Promise<Scan> {
  const scan: Scan = { models: [], escaping: new Map(), directories: new Map(), root: null };
  let root: string;
  try {
    root = await realpath(modelsDir);
  } catch {
    scan.directories.set(modelsDir, null); // stale once it appears
    return scan;
  }
  scan.root = root;
  const pending = [root];
  while (pending.length > 0) {
    const dir = pending.pop() as string;
    const mtime = await mtimeNs(dir);
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      continue; // vanished or unreadable: nothing to list there
    }
    if (mtime !== null) scan.directories.set(dir, mtime);
    for (const entry of entries) {
      if (entry.name.startsWith(".")) continue;
      const path = join(dir, entry.name);
      const format = formatOf(entry.name);
      // A directory named like a model is listed as a model so validation can say what is wrong with it.
      if (entry.isDirectory() && !format) pending.push(path);
      else if (format && (entry.isFile() || entry.isDirectory())) {
        scan.models.push({ name: toName(root, path), path, key: path, format });
      } else if (format && entry.isSymbolicLink()) {
        await addSymlink(scan, root, options.within ?? root, path, format);
      }
    }
  }
  scan.models = groupSplits(scan.models);
  return scan;
}

async function addSymlink(scan: Scan, root: string, within: string, path: string, format: ModelFormat): Promise<void> {
  let target: string;
  try {
    target = await realpath(path);
  } catch {
    return; // dangling link
  }
  const name = toName(root, path);
  if (isInside(within, target)) scan.models.push({ name, path, key: target, format });
  else scan.escaping.set(name, target);
}

/** Whether any directory (or metadata file) of a scan changed, appeared or vanished since it was made. */
export async function scanIsStale(scan: Pick<Scan, "directories">): Promise<boolean> {
  for (const [dir, mtime] of scan.directories) {
    if ((await mtimeNs(dir)) !== mtime) return true;
  }
  return false;
}

/**
 * A store scan's start: its root's real path and modification time, or — when the root is not there — an empty scan
 * with `root` null that remembers the path, so the store is looked for again when it appears.
 */
export async function openStoreScan(root: string): Promise<Scan> {
  const scan: Scan = { models: [], escaping: new Map(), directories: new Map(), root: null };
  try {
    scan.root = await realpath(root);
  } catch {
    scan.directories.set(root, null);
    return scan;
  }
  scan.directories.set(root, await mtimeNs(root));
  return scan;
}

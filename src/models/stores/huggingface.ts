/**
 * The Hugging Face hub cache, read-only: `<hub>/models--ORG--REPO/snapshots/REV/…/*.gguf`, where snapshot files are
 * symlinks to `../../blobs/<hash>` (or copies, where symlinks are unavailable). Models are named `ORG/REPO/FILE` (FILE
 * keeps its folders inside the snapshot). Only the latest snapshot counts: the one `refs/main` names, or, when the
 * repository was downloaded by revision only, the most recently modified one. A blob named by a sha256 (an LFS file,
 * as GGUF files are) is verified against it before loading, like an Ollama blob.
 */
import { readdir, readFile, realpath } from "node:fs/promises";
import { basename, join } from "node:path";
import { type FoundModel, mtimeNs, openStoreScan, type Scan, scanModels } from "../discovery.js";

const REPO_DIR = /^models--(.+)$/;
const LFS_BLOB = /^[0-9a-f]{64}$/;

/** `models--ORG--REPO` → `ORG/REPO` (a repository without an organisation keeps its one segment). */
export function hubRepoName(dirName: string): string | undefined {
  const match = REPO_DIR.exec(dirName);
  return match ? (match[1] as string).split("--").join("/") : undefined;
}

/** The snapshot directory to read: the revision `refs/main` names, else the newest snapshot. */
async function latestSnapshot(repoDir: string, scan: Scan): Promise<string | undefined> {
  const ref = join(repoDir, "refs", "main");
  const snapshots = join(repoDir, "snapshots");
  scan.directories.set(ref, await mtimeNs(ref));
  scan.directories.set(snapshots, await mtimeNs(snapshots));
  const revision = (await readFile(ref, "utf8").catch(() => "")).trim();
  if (revision !== "" && !revision.includes("/") && (await mtimeNs(join(snapshots, revision))) !== null) {
    return join(snapshots, revision);
  }
  const entries = await readdir(snapshots, { withFileTypes: true }).catch(() => []);
  let newest: { path: string; mtime: bigint } | undefined;
  for (const entry of entries) {
    if (!entry.isDirectory() || entry.name.startsWith(".")) continue;
    const path = join(snapshots, entry.name);
    const mtime = (await mtimeNs(path)) ?? 0n;
    if (!newest || mtime > newest.mtime) newest = { path, mtime };
  }
  return newest?.path;
}

async function repoModels(repoDir: string, repo: string, scan: Scan): Promise<FoundModel[]> {
  const snapshot = await latestSnapshot(repoDir, scan);
  if (!snapshot) return [];
  const within = await realpath(repoDir).catch(() => repoDir);
  const inner = await scanModels(snapshot, { within });
  for (const [dir, mtime] of inner.directories) scan.directories.set(dir, mtime);
  return inner.models.map((m) => ({
    ...m,
    name: `${repo}/${m.name}`,
    ...(m.aliases ? { aliases: m.aliases.map((a) => `${repo}/${a}`) } : {}),
    ...(LFS_BLOB.test(basename(m.key)) ? { sha256: basename(m.key) } : {}),
    store: "huggingface" as const,
  }));
}

/** Every GGUF/ONNX model of the latest snapshot of every model repository in the hub cache at `root`. */
export async function scanHuggingFace(root: string): Promise<Scan> {
  const scan = await openStoreScan(root);
  if (scan.root === null) return scan;
  const entries = await readdir(root, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const repo = entry.isDirectory() ? hubRepoName(entry.name) : undefined;
    if (repo) scan.models.push(...(await repoModels(join(root, entry.name), repo, scan)));
  }
  scan.models.sort((a, b) => a.name.localeCompare(b.name));
  return scan;
}

/**
 * File hashes, computed at most once per version of a file. Hashing reads every byte (seconds for a multi-GB model), so
 * a sha256 is remembered with the size and mtime it was computed for, in memory and, when a file is given, on disk
 * (`<cache_dir>/file_digests.json`), so a restarted server or the next CLI run does not hash the same blob again. A file
 * whose size or mtime changed is hashed afresh. The record is only a cache: a missing or unreadable one costs a re-hash,
 * never a wrong answer, and concurrent writers at worst drop each other's entries.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { ModelInvalid } from "../errors/index.js";
import { writeFileAtomic } from "../fs/atomic-write.js";
import { type Fingerprint, sameFileVersion } from "./types.js";

const FORMAT = "inferno-file-digests";
const VERSION = 1;

interface Entry {
  size: number;
  mtime_ms: number;
  sha256: string;
}

/** The hex sha256 of a whole file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export class FileDigests {
  private entries: Map<string, Entry> | undefined;
  private loading: Promise<Map<string, Entry>> | undefined;
  /** One hash per file version in flight: concurrent loads of one blob share it. */
  private readonly inFlight = new Map<string, Promise<string>>();

  /** @param file Where to keep the record across processes; in memory only when absent. */
  constructor(private readonly file?: string) {}

  /** The sha256 of the file at `path` whose current fingerprint is `fingerprint`: remembered, or computed once. */
  async sha256(path: string, fingerprint: Fingerprint): Promise<string> {
    const entries = await this.load();
    const known = entries.get(path);
    if (known && sameFileVersion({ size: known.size, mtimeMs: known.mtime_ms }, fingerprint)) return known.sha256;
    const id = `${path}\0${fingerprint.size}\0${fingerprint.mtimeMs}`;
    let pending = this.inFlight.get(id);
    if (!pending) {
      pending = sha256File(path).then(async (sha256) => {
        entries.set(path, { size: fingerprint.size, mtime_ms: fingerprint.mtimeMs, sha256 });
        await this.save(entries);
        return sha256;
      });
      this.inFlight.set(id, pending);
      pending.finally(() => this.inFlight.delete(id)).catch(() => {});
    }
    return pending;
  }

  /**
   * Throws ModelInvalid unless the file's sha256 is `expected` (a digest its store names). Hashes only a file version
   * not verified before.
   */
  async verify(model: { name: string; path: string }, fingerprint: Fingerprint, expected: string): Promise<void> {
    const actual = await this.sha256(model.path, fingerprint);
    if (actual === expected) return;
    const problem = `sha256 is ${actual} but its store names sha256:${expected}`;
    throw new ModelInvalid(`model ${model.name} (${model.path}) is corrupt: ${problem}`, {
      details: { name: model.name, path: model.path, problem, expected_sha256: expected, sha256: actual },
    });
  }

  private load(): Promise<Map<string, Entry>> {
    if (this.entries) return Promise.resolve(this.entries);
    this.loading ??= this.read().then((entries) => (this.entries = entries));
    return this.loading;
  }

  private async read(): Promise<Map<string, Entry>> {
    if (!this.file) return new Map();
    try {
      const record = JSON.parse(await readFile(this.file, "utf8")) as {
        format?: unknown;
        version?: unknown;
        files?: unknown;
      };
      if (record.format !== FORMAT || record.version !== VERSION || typeof record.files !== "object" || !record.files) {
        return new Map();
      }
      const valid = Object.entries(record.files as Record<string, Partial<Entry>>).filter(
        (e): e is [string, Entry] =>
          typeof e[1].size === "number" && typeof e[1].mtime_ms === "number" && typeof e[1].sha256 === "string",
      );
      return new Map(valid);
    } catch {
      return new Map(); // absent or unreadable: only a re-hash is lost
    }
  }

  private async save(entries: Map<string, Entry>): Promise<void> {
    if (!this.file) return;
    const record = { format: FORMAT, version: VERSION, files: Object.fromEntries(entries) };
    try {
      await mkdir(dirname(this.file), { recursive: true });
      await writeFileAtomic(this.file, `${JSON.stringify(record, null, 1)}\n`);
    } catch {
      // An unwritable cache directory only means hashing again next time.
    }
  }
}

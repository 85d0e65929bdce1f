/**
 * The one atomic, durable file write every layer uses (the state file, `config set`, the digests record, generated
 * models, benchmark results): a temporary file in the same directory, written and fsynced, renamed over the target, and
 * the directory fsynced so the rename survives a power loss. A reader sees the old file or the new one, never half of
 * either; a failed write removes its temporary file and leaves the old file as it was.
 *
 * The file-system calls are injectable (`AtomicFileSystem`) so the state store can bound each of them by a time limit
 * and its tests can make one fail or hang. Locking is the caller's business: the state store holds its lock around it.
 */
import { randomBytes } from "node:crypto";
import * as fsPromises from "node:fs/promises";
import { dirname } from "node:path";

/** Marks a temporary file: `<target><TEMP_MARK><pid>-<random>`. A crash can leave one behind; its owner may sweep them. */
export const TEMP_MARK = ".tmp-";

/** An open file, as far as the write uses it. */
export interface AtomicFileHandle {
  chmod(mode: number): Promise<void>;
  writeFile(data: Uint8Array): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** The file-system calls the write makes (node:fs/promises by default). */
export interface AtomicFileSystem {
  open(path: string, flags: "w" | "r", mode?: number): Promise<AtomicFileHandle>;
  rename(from: string, to: string): Promise<void>;
  rm(path: string, options: { force: true }): Promise<void>;
  stat(path: string): Promise<{ mode: number }>;
  /** A hard link (`exclusive` writes only). */
  link?(existing: string, path: string): Promise<void>;
}

const nodeFileSystem: AtomicFileSystem = {
  open: (path, flags, mode) => fsPromises.open(path, flags, mode),
  rename: (from, to) => fsPromises.rename(from, to),
  rm: (path, options) => fsPromises.rm(path, options),
  stat: (path) => fsPromises.stat(path),
  link: (existing, path) => fsPromises.link(existing, path),
};

export interface AtomicWriteOptions {
  /** Permission bits of a new file (before the umask); a file replaced keeps its own mode. Default 0o666. */
  mode?: number;
  /**
   * Create only: an existing `path` is left alone and the write fails with its `EEXIST` error. The temporary file is
   * hard-linked into place instead of renamed, which checks and creates in one step.
   */
  exclusive?: boolean;
  /** The file-system calls. Default node:fs/promises. */
  fs?: AtomicFileSystem;
}

/**
 * Replaces `path` with `data` (a string is written as UTF-8) atomically and durably. The directory must exist. A file
 * replaced keeps its mode (a user's choice); a new one gets `options.mode`. With `exclusive`, creates it or fails.
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const fs = options.fs ?? nodeFileSystem;
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  const temp = `${path}${TEMP_MARK}${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    const existingMode = await fs.stat(path).then(
      (info) => info.mode & 0o777,
      () => null,
    );
    const handle = await fs.open(temp, "w", options.mode ?? 0o666);
    try {
      if (existingMode !== null) await handle.chmod(existingMode);
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (options.exclusive) {
      if (!fs.link) throw new TypeError("an exclusive atomic write needs a file system with link()");
      await fs.link(temp, path);
      await fs.rm(temp, { force: true });
    } else await fs.rename(temp, path);
  } catch (error) {
    await fs.rm(temp, { force: true }).catch(() => {});
    throw error;
  }
  await syncDirectory(fs, dirname(path));
}

/** Makes a rename durable. Some platforms cannot open a directory for fsync; the rename is then as durable as it gets. */
async function syncDirectory(fs: AtomicFileSystem, dir: string): Promise<void> {
  let handle;
  try {
    handle = await fs.open(dir, "r");
    await handle.sync();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "EISDIR" && code !== "EPERM" && code !== "EINVAL") throw error;
  } finally {
    await handle?.close();
  }
}

/**
 * The state file `<cache_dir>/cache_state.bin.zst`: one standard zstd frame (level 3, so `zstd -dc` decodes it)
 * around the codec's document.
 *
 * Writes are atomic and durable — the shared write (fs/atomic-write.ts: a temporary file in the same directory, fsync,
 * rename over the state file, fsync of the directory) — under a cross-process lock (proper-lockfile's `<file>.lock`
 * directory), so a server and a CLI never interleave. A save merges: under the lock it reads the file and adds this process's delta (persistence/merge.ts), so
 * any number of processes sharing one `cache_dir` lose nothing. A file that cannot be decoded is renamed aside (`.corrupt-<timestamp>`, the newest few kept) and
 * reported once; the caller starts empty. A file from a newer build is kept whole (`.newer-v<N>-<timestamp>`), also
 * reported once, so a downgrade never destroys the newer build's statistics.
 */
import { constants } from "node:fs";
import * as fsPromises from "node:fs/promises";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";
import lockfile from "proper-lockfile";
import {
  isInfernoError,
  messageOf,
  StateCorrupt,
  StateLocked,
  StateTimeout,
  StateUnwritable,
} from "../../errors/index.js";
import { type AtomicFileHandle, TEMP_MARK, writeFileAtomic } from "../../fs/atomic-write.js";
import { withTimeout } from "../clock.js";
import { decodeState, encodeState, STATE_SCHEMA_VERSION } from "./codec.js";
import { mergeDelta } from "./merge.js";
import { stuckCall } from "./stuck-calls.js";
import type { CacheState, RestoreResult, SaveResult, StateDelta, StateStore } from "./types.js";
import { zstdCompress, zstdDecompress } from "./zstd.js";

export const STATE_FILE_NAME = "cache_state.bin.zst";
/** The zstd level SPEC.md fixes: fast, and small enough for a few hundred models. */
export const ZSTD_LEVEL = 3;
/** Quarantined (undecodable) state files kept; older ones are deleted. */
export const CORRUPT_FILES_KEPT = 3;
const CORRUPT_MARK = ".corrupt-";
const NEWER_MARK = ".newer-v";
/** A new cache directory: only its user may list or enter it (usage statistics name the user's models). */
export const DIR_MODE = 0o700;
/** A new state file: only its user may read it. An existing file keeps its mode across saves. */
export const FILE_MODE = 0o600;

/** How long (ms) one file-system call of the store may take before it fails with `StateTimeout`. */
export const DEFAULT_FS_TIMEOUT_MS = 10_000;

/** An open file, as far as the store uses it: what the shared atomic write needs. */
export type StoreFileHandle = AtomicFileHandle;

/**
 * The options the store passes to proper-lockfile's `lock`. Spelt out here rather than taken from
 * `@types/proper-lockfile` (a devDependency): the published declarations must not need it.
 */
export interface LockOptions {
  realpath: boolean;
  stale: number;
  retries: number;
  onCompromised: (error: Error) => void;
}

/** proper-lockfile's `lock`: resolves with the release function. */
export type LockFunction = (file: string, options: LockOptions) => Promise<() => Promise<void>>;

/**
 * Every file-system call the store makes: node:fs/promises and proper-lockfile by default. Tests inject calls that fail
 * or never finish, to show that a stuck file system fails a save (`StateTimeout`) instead of hanging it.
 */
export interface StoreFileSystem {
  readFile(path: string): Promise<Buffer>;
  writeFile(path: string, data: string): Promise<void>;
  mkdir(path: string, options: { recursive: true; mode: number }): Promise<unknown>;
  open(path: string, flags: "w" | "r", mode?: number): Promise<StoreFileHandle>;
  rename(from: string, to: string): Promise<void>;
  rm(path: string, options: { recursive?: boolean; force: boolean }): Promise<void>;
  stat(path: string): Promise<{ mode: number; mtimeMs: number; isDirectory(): boolean }>;
  readdir(path: string): Promise<string[]>;
  access(path: string, mode: number): Promise<void>;
  lock: LockFunction;
}

export const nodeFileSystem: StoreFileSystem = {
  readFile: (path) => fsPromises.readFile(path),
  writeFile: (path, data) => fsPromises.writeFile(path, data),
  mkdir: (path, options) => fsPromises.mkdir(path, options),
  open: (path, flags, mode) => fsPromises.open(path, flags, mode),
  rename: (from, to) => fsPromises.rename(from, to),
  rm: (path, options) => fsPromises.rm(path, options),
  stat: (path) => fsPromises.stat(path),
  readdir: (path) => fsPromises.readdir(path),
  access: (path, mode) => fsPromises.access(path, mode),
  lock: (file, options) => lockfile.lock(file, options),
};

/**
 * `fs` with every call — the lock's and an open file's included — bounded by `timeoutMs` of real time: a call that does
 * not finish fails with `StateTimeout` naming it. A lock or file that arrives after its call timed out is released or
 * closed when it does, so nothing stays held.
 */
export function boundedFileSystem(fs: StoreFileSystem, timeoutMs: number): StoreFileSystem {
  const bound = <T>(
    operation: string,
    path: string,
    call: () => Promise<T>,
    late?: (value: T) => Promise<unknown>,
  ): Promise<T> => {
    const pending = call();
    return withTimeout(pending, timeoutMs, () => {
      const returned = stuckCall();
      pending.then(returned, returned);
      if (late) pending.then(late).catch(() => {});
      return new StateTimeout(
        `${operation} ${path} did not finish within ${timeoutMs / 1000} s (a stuck file system?)`,
        {
          details: { operation, path, timeout_ms: timeoutMs },
        },
      );
    });
  };
  const handle = (file: StoreFileHandle, path: string): StoreFileHandle => ({
    chmod: (mode) => bound("chmod", path, () => file.chmod(mode)),
    writeFile: (data) => bound("write", path, () => file.writeFile(data)),
    sync: () => bound("fsync", path, () => file.sync()),
    close: () => bound("close", path, () => file.close()),
  });
  return {
    readFile: (path) => bound("read", path, () => fs.readFile(path)),
    writeFile: (path, data) => bound("write", path, () => fs.writeFile(path, data)),
    mkdir: (path, options) => bound("mkdir", path, () => fs.mkdir(path, options)),
    open: async (path, flags, mode) =>
      handle(
        await bound(
          "open",
          path,
          () => fs.open(path, flags, mode),
          (late) => late.close(),
        ),
        path,
      ),
    rename: (from, to) => bound("rename", from, () => fs.rename(from, to)),
    rm: (path, options) => bound("rm", path, () => fs.rm(path, options)),
    stat: (path) => bound("stat", path, () => fs.stat(path)),
    readdir: (path) => bound("readdir", path, () => fs.readdir(path)),
    access: (path, mode) => bound("access", path, () => fs.access(path, mode)),
    lock: async (file, options) => {
      const release = await bound(
        "lock",
        `${file}.lock`,
        () => fs.lock(file, options),
        (late) => late(),
      );
      return () => bound("unlock", `${file}.lock`, release);
    },
  };
}

/** What the system's error codes that no retry can fix mean, for `StateUnwritable`'s message. */
const UNWRITABLE_CAUSES: Record<string, string> = {
  EROFS: "the file system is read-only",
  ENOSPC: "no space is left on the device",
  EDQUOT: "the disk quota is exceeded",
  EACCES: "permission denied",
  EPERM: "the operation is not permitted",
};

/** A file-system error no retry can fix (read-only, full, forbidden) as `StateUnwritable`; anything else as it is. */
function unwritable(error: unknown, path: string): unknown {
  const { code, syscall } = error as NodeJS.ErrnoException;
  const reason = code === undefined ? undefined : UNWRITABLE_CAUSES[code];
  if (reason === undefined) return error;
  return new StateUnwritable(
    `cannot save the cache state ${path}: ${reason} (${code}${syscall ? ` on ${syscall}` : ""})`,
    {
      cause: error,
      details: { cause_code: code, path },
    },
  );
}

/** Inside proper-lockfile's `<file>.lock` directory: who holds the lock (`LockOwner`). */
const OWNER_FILE = "owner.json";
/**
 * How long a lock directory may go without an owner record before it counts as abandoned (see
 * `takeOverOwnerlessLock`): far beyond the microseconds a live holder needs to write or remove its record.
 */
export const OWNERLESS_LOCK_GRACE_MS = 1500;

/** Who holds the state lock: enough to tell, on the same host, that the holder is dead. */
export interface LockOwner {
  pid: number;
  host: string;
  /** When the holding process started (epoch ms): a reused pid has a different start. */
  started_at: number;
}

/** This process as a lock owner. */
const SELF: LockOwner = {
  pid: process.pid,
  host: hostname(),
  started_at: Math.round(Date.now() - process.uptime() * 1000),
};

function sameOwner(a: LockOwner, b: LockOwner): boolean {
  return a.pid === b.pid && a.host === b.host && a.started_at === b.started_at;
}

/**
 * Whether the owner is provably dead: it ran on this host and its pid is gone, or its pid is now this process (which
 * is not it: the start times differ). A live pid on this host, or any other host, is never proven dead.
 */
export function ownerIsDead(owner: LockOwner): boolean {
  if (owner.host !== SELF.host) return false;
  if (owner.pid === SELF.pid) return owner.started_at !== SELF.started_at;
  try {
    process.kill(owner.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}

/**
 * Where the store's CPU work runs: decoding a saved state, and merging a delta into one and encoding the result. The
 * default runs it inline; `StateWorker` (state-worker.ts) runs it on a worker thread so the event loop stays free.
 */
export interface StateCodec {
  decode(bytes: Uint8Array): Promise<CacheState>;
  merge(current: Uint8Array | null, delta: StateDelta): Promise<Uint8Array>;
}

export const inlineCodec: StateCodec = {
  decode: async (bytes) => decompressState(bytes),
  merge: async (current, delta) => compressState(mergeDelta(current ? await decompressState(current) : null, delta)),
};

export interface FileStateStoreOptions {
  /** Where decoding and encoding run. Default: inline (`inlineCodec`); servers pass a `StateWorker`. */
  codec?: StateCodec;
  /** Wall clock for quarantine names (ms). Default `Date.now`. */
  now?: () => number;
  /**
   * How long (ms) to retry when another process holds the lock before failing with `StateLocked`. Default 5000.
   */
  lockWaitMs?: number;
  /**
   * Bound (ms) on each file-system call, the lock's included; beyond it the call fails with `StateTimeout`. Default
   * 10 000: under the saver's 15 s bound on a whole save, so a stuck call is named first.
   */
  fsTimeoutMs?: number;
  /** The file-system calls (default `nodeFileSystem`); each is bounded by `fsTimeoutMs`. */
  fs?: StoreFileSystem;
}

/** The state as one zstd frame at `ZSTD_LEVEL`, with its content size and checksum (see `zstd.ts`). */
export function compressState(state: CacheState): Promise<Buffer> {
  return zstdCompress(encodeState(state), ZSTD_LEVEL);
}

/**
 * Decompresses (at most 64 MiB of content, checksum verified when present) and decodes; throws (`StateCorrupt` or the
 * zstd error) for anything that is not a whole, valid state.
 */
export async function decompressState(bytes: Uint8Array): Promise<CacheState> {
  if (bytes.length === 0) throw new Error("the file is empty");
  return decodeState(await zstdDecompress(bytes));
}

/** Nothing there to read (a path through a regular file counts: the directory cannot exist either). */
function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ENOTDIR";
}

/** The schema version when `error` is the codec refusing a newer build's state, else null. */
function newerSchemaVersion(error: unknown): number | null {
  if (!(error instanceof StateCorrupt) || error.details?.newer !== true) return null;
  const version = error.details.schema_version;
  return typeof version === "number" ? version : null;
}

/** The owner recorded in a lock directory, or null (none yet, unreadable, not an owner record). */
async function readOwner(fs: StoreFileSystem, lockDir: string): Promise<LockOwner | null> {
  try {
    const owner = JSON.parse((await fs.readFile(join(lockDir, OWNER_FILE))).toString("utf8")) as Partial<LockOwner>;
    const valid =
      typeof owner.pid === "number" && typeof owner.host === "string" && typeof owner.started_at === "number";
    return valid ? (owner as LockOwner) : null;
  } catch {
    return null;
  }
}

function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:.]/g, "");
}

export class FileStateStore implements StateStore {
  readonly path: string;
  private readonly now: () => number;
  private readonly lockWaitMs: number;
  private readonly codec: StateCodec;
  private readonly fs: StoreFileSystem;
  /** Schema version of a newer build's state file that `load` could not rename aside yet; `save` must not overwrite it. */
  private pendingNewer: number | null = null;

  constructor(
    /** The cache directory (`cache.cache_dir`). */
    readonly dir: string,
    options: FileStateStoreOptions = {},
  ) {
    this.path = join(dir, STATE_FILE_NAME);
    this.now = options.now ?? Date.now;
    this.lockWaitMs = options.lockWaitMs ?? 5000;
    this.codec = options.codec ?? inlineCodec;
    this.fs = boundedFileSystem(options.fs ?? nodeFileSystem, options.fsTimeoutMs ?? DEFAULT_FS_TIMEOUT_MS);
  }

  /**
   * Reads the state. Leftover temporary files of interrupted saves are removed first, whatever the state file holds.
   * Missing directory or file → empty, no warning. A file written by a newer Inferno (higher schema version) → kept
   * intact as `.newer-v<N>-<timestamp>` (never pruned: it holds real statistics), one warning, empty. Undecodable,
   * truncated, empty or foreign file → quarantined as `.corrupt-<timestamp>`, one warning, empty.
   */
  async load(): Promise<RestoreResult> {
    const cleanup = await this.removeTempFiles().then(
      () => null,
      (error: unknown) => `leftover temporary files next to ${this.path} could not be removed (${messageOf(error)})`,
    );
    const result = await this.loadState();
    const notes = [result.warning, cleanup, await this.exposure()].filter((n): n is string => n !== null);
    return { state: result.state, warning: notes.length === 0 ? null : notes.join("; ") };
  }

  /** A sentence when the cache directory or the state file is readable by every user (left as it is), else null. */
  private async exposure(): Promise<string | null> {
    const exposed: string[] = [];
    for (const path of [this.dir, this.path]) {
      try {
        const { mode } = await this.fs.stat(path);
        if (mode & 0o004) exposed.push(`${path} (mode ${(mode & 0o777).toString(8).padStart(4, "0")})`);
      } catch {
        // Missing: created private when first saved.
      }
    }
    if (exposed.length === 0) return null;
    return `${exposed.join(" and ")} ${exposed.length === 1 ? "is" : "are"} readable by every user; left as is (chmod 700 the directory, 600 the file to restrict)`;
  }

  private async loadState(): Promise<RestoreResult> {
    let raw: Buffer;
    try {
      raw = await this.fs.readFile(this.path);
    } catch (error) {
      if (isMissing(error)) return { state: null, warning: null };
      return { state: null, warning: `cannot read the cache state ${this.path}: ${messageOf(error)}; starting empty` };
    }
    try {
      return { state: await this.codec.decode(raw), warning: null };
    } catch (error) {
      const newer = newerSchemaVersion(error);
      return newer === null ? this.refuseCorrupt(error) : this.refuseNewer(newer);
    }
  }

  private async refuseCorrupt(error: unknown): Promise<RestoreResult> {
    const aside = await this.withLock(() => this.quarantine()).catch((e: unknown) => `not renamed: ${messageOf(e)}`);
    return {
      state: null,
      warning: `the cache state ${this.path} could not be decoded (${messageOf(error)}); it was moved to ${aside} and the cache starts empty`,
    };
  }

  /**
   * A newer build's state is not garbage: it is set aside under a name that says so, for when that build runs again.
   * If it cannot be renamed now (locked, say), the next save retries first and fails rather than overwrite it.
   */
  private async refuseNewer(version: number): Promise<RestoreResult> {
    let kept: string;
    try {
      kept = await this.withLock(() => this.setAsideNewer(version));
    } catch (error) {
      this.pendingNewer = version;
      kept = `not renamed yet (${messageOf(error)}): saves retry the rename and never overwrite it`;
    }
    return {
      state: null,
      warning:
        `the cache state ${this.path} was written by a newer Inferno (schema version ${version}; this build reads up to ` +
        `${STATE_SCHEMA_VERSION}); it was kept intact as ${kept} and the cache starts empty`,
    };
  }

  /**
   * Reads the state without side effects (the CLI's file mode): null when there is no file; `StateCorrupt` naming the
   * file when it cannot be decoded (it is left in place; a starting cache quarantines it).
   */
  async read(): Promise<{ state: CacheState; bytes: number } | null> {
    let raw: Buffer;
    try {
      raw = await this.fs.readFile(this.path);
    } catch (error) {
      if (isMissing(error)) return null;
      throw error;
    }
    try {
      return { state: await decompressState(raw), bytes: raw.length };
    } catch (error) {
      throw new StateCorrupt(`the cache state ${this.path} cannot be decoded: ${messageOf(error)}`, { cause: error });
    }
  }

  /**
   * Adds a delta to the stored state, atomically and durably under the lock: the file as it is now (whatever other
   * processes saved) is read, merged with the delta and written back. An undecodable file is set aside first, a newer
   * build's file is kept whole (never overwritten).
   */
  async save(delta: StateDelta): Promise<SaveResult> {
    try {
      await this.fs.mkdir(this.dir, { recursive: true, mode: DIR_MODE });
      return await this.withLock(async () => {
        if (this.pendingNewer !== null) {
          await this.setAsideNewer(this.pendingNewer);
          this.pendingNewer = null;
        }
        const bytes = await this.mergeIntoFile(delta);
        await this.writeAtomically(bytes);
        return { bytes: bytes.length };
      });
    } catch (error) {
      throw unwritable(error, this.path);
    }
  }

  /** The stored state's bytes (lock held), or null when there is none. */
  private async readRaw(): Promise<Uint8Array | null> {
    try {
      const raw = await this.fs.readFile(this.path);
      return raw.length === 0 ? null : raw;
    } catch (error) {
      if (isMissing(error)) return null;
      throw error;
    }
  }

  /**
   * Merges into the stored state (lock held). A file that cannot be decoded is set aside first (quarantined, or kept
   * whole when a newer build wrote it) and the delta starts a fresh state: nothing is ever overwritten unread.
   */
  private async mergeIntoFile(delta: StateDelta): Promise<Uint8Array> {
    const current = await this.readRaw();
    try {
      return await this.codec.merge(current, delta);
    } catch (error) {
      // Merging is pure computation: with bytes to merge into, a failure means they could not be decoded.
      if (current === null) throw error;
      const newer = newerSchemaVersion(error);
      if (newer !== null) await this.setAsideNewer(newer);
      else await this.quarantine();
      return this.codec.merge(null, delta);
    }
  }

  /**
   * Whether saves can work: the cache directory (or its nearest existing parent, which a save would create it in) must
   * be a writable directory on a writable file system. Why not (`StateUnwritable` for a read-only file system or a
   * permission problem, as a save would fail), or null.
   */
  async probe(): Promise<Error | null> {
    const notDirectory = (what: string) =>
      new StateUnwritable(`cannot save the cache state in ${this.dir}: ${what} is not a directory`, {
        details: { cause_code: "ENOTDIR", path: this.dir },
      });
    for (let dir = this.dir; ; dir = dirname(dir)) {
      try {
        const info = await this.fs.stat(dir);
        if (!info.isDirectory()) return notDirectory(dir);
        await this.fs.access(dir, constants.W_OK | constants.X_OK);
        return null;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "ENOENT" && dirname(dir) !== dir) continue;
        if (code === "ENOTDIR") return notDirectory("a parent of it");
        const typed = unwritable(error, this.path);
        return typed instanceof Error ? typed : new Error(String(typed));
      }
    }
  }

  /**
   * Reads, changes and writes the state under one lock hold (the CLI's file mode: `cache clear`, `cache evict`). An
   * unreadable file is refused rather than overwritten. Returns what `change` returned.
   */
  async update<T>(change: (state: CacheState | null) => { state: CacheState; result: T }): Promise<T> {
    await this.fs.mkdir(this.dir, { recursive: true, mode: DIR_MODE }).catch((error: unknown) => {
      throw unwritable(error, this.path);
    });
    return this.withLock(async () => {
      let current: CacheState | null = null;
      let raw: Uint8Array | null = null;
      try {
        raw = await this.fs.readFile(this.path);
      } catch (error) {
        if (!isMissing(error)) throw error;
      }
      if (raw !== null) current = await this.decodeForUpdate(raw);
      const { state, result } = change(current);
      await this.writeAtomically(await compressState(state));
      return result;
    });
  }

  /** The state an update starts from; one that does not decode is refused naming the file, and left as it is. */
  private async decodeForUpdate(raw: Uint8Array): Promise<CacheState> {
    try {
      return await decompressState(raw);
    } catch (error) {
      const details = isInfernoError(error) ? error.details : undefined;
      throw new StateCorrupt(
        `the cache state ${this.path} cannot be read (${messageOf(error)}); it was left as it is. Move it aside (or let \`inferno serve\` set it aside as .corrupt-*) to start afresh`,
        { cause: error, details: { ...details, path: this.path } },
      );
    }
  }

  /** The shared atomic write (fs/atomic-write.ts) through this store's bounded calls; callers hold the lock. */
  private writeAtomically(bytes: Uint8Array): Promise<void> {
    return writeFileAtomic(this.path, bytes, { mode: FILE_MODE, fs: this.fs });
  }

  /**
   * Runs `fn` holding the cross-process lock. The holder records itself (`LockOwner`) in the lock directory; a lock
   * whose owner is provably dead (`ownerIsDead`) is taken over at once, one without an owner record once it is abandoned
   * (`takeOverOwnerlessLock`). Only a lock held by a live (or unknown) process
   * is waited for (up to `lockWaitMs`; proper-lockfile also calls a lock untouched for 10 s stale); any other failure
   * (a permission error, say) fails at once.
   */
  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.lockWaitMs;
    const lockDir = `${this.path}.lock`;
    let release: () => Promise<void>;
    for (;;) {
      try {
        // A lock found compromised (taken over by another process) must not crash this one: the write stays atomic.
        release = await this.fs.lock(this.path, {
          realpath: false,
          stale: 10_000,
          retries: 0,
          onCompromised: () => {},
        });
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ELOCKED") throw error;
        if (await this.takeOverDeadLock(lockDir)) continue;
        if (Date.now() >= deadline) {
          throw new StateLocked(`the cache state ${this.path} is locked by another Inferno process`, { cause: error });
        }
        await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 50));
      }
    }
    const ownerFile = join(lockDir, OWNER_FILE);
    try {
      await this.fs.writeFile(ownerFile, JSON.stringify(SELF)).catch(() => {});
      return await fn();
    } finally {
      // proper-lockfile removes the directory with rmdir: it must be empty again.
      await this.fs.rm(ownerFile, { force: true }).catch(() => {});
      await release().catch(() => this.removeEmptyLock(lockDir));
    }
  }

  /**
   * After a release that failed — proper-lockfile calls a lock whose refresh came late (a save of a large state on a
   * busy machine) compromised, and then neither releases nor removes it —: the lock directory is removed when it is
   * empty, i.e. no other process took it over meanwhile (a holder records itself in it at once). It was left behind
   * after clean exits.
   */
  private async removeEmptyLock(lockDir: string): Promise<void> {
    const left = await this.fs.readdir(lockDir).catch(() => null);
    if (left !== null && left.length === 0) await this.fs.rm(lockDir, { recursive: true, force: true }).catch(() => {});
  }

  /**
   * Removes the lock when its recorded owner is provably dead; true when it did. The owner is read again right before
   * the removal, so a lock that another process took over in between is left alone.
   */
  private async takeOverDeadLock(lockDir: string): Promise<boolean> {
    const owner = await readOwner(this.fs, lockDir);
    if (owner === null) return this.takeOverOwnerlessLock(lockDir);
    if (!ownerIsDead(owner)) return false;
    const again = await readOwner(this.fs, lockDir);
    if (again === null || !sameOwner(owner, again)) return false;
    await this.fs.rm(lockDir, { recursive: true, force: true });
    return true;
  }

  /**
   * A lock directory without a (whole) owner record: its holder was killed in the moment between creating the lock
   * and recording itself, or between removing its record and the lock (`npm run stress` lands SIGKILLs there). A live
   * holder spends microseconds in either gap, so a record still missing `OWNERLESS_LOCK_GRACE_MS` after the directory
   * last changed means an abandoned lock: it is removed (rather than blocking saves until proper-lockfile's 10 s
   * staleness). True when it was.
   */
  private async takeOverOwnerlessLock(lockDir: string): Promise<boolean> {
    const changed = await this.fs.stat(lockDir).then(
      (info) => info.mtimeMs,
      () => null,
    );
    if (changed === null || Date.now() - changed < OWNERLESS_LOCK_GRACE_MS) return false;
    if ((await readOwner(this.fs, lockDir)) !== null) return false;
    await this.fs.rm(lockDir, { recursive: true, force: true });
    return true;
  }

  /** Renames the state file aside and keeps only the newest few quarantined files. Returns the new name. */
  private async quarantine(): Promise<string> {
    const aside = `${this.path}${CORRUPT_MARK}${stamp(this.now())}`;
    await this.fs.rename(this.path, aside);
    const old = (await this.siblings(CORRUPT_MARK)).sort().reverse().slice(CORRUPT_FILES_KEPT);
    await Promise.all(old.map((name) => this.fs.rm(join(this.dir, name), { force: true })));
    return aside;
  }

  /** Renames a newer build's state file to `.newer-v<N>-<timestamp>`; these are kept, not pruned. Returns the new name. */
  private async setAsideNewer(version: number): Promise<string> {
    const aside = `${this.path}${NEWER_MARK}${version}-${stamp(this.now())}`;
    try {
      await this.fs.rename(this.path, aside);
    } catch (error) {
      // Gone since it was read (another process set it aside): nothing left to protect.
      if (!isMissing(error)) throw error;
    }
    return aside;
  }

  /** Temporary files left by a save that was interrupted (crash, power loss); only done while holding the lock. */
  private async removeTempFiles(): Promise<void> {
    const temps = await this.siblings(TEMP_MARK);
    if (temps.length === 0) return;
    await this.withLock(async () => {
      await Promise.all(
        (await this.siblings(TEMP_MARK)).map((name) => this.fs.rm(join(this.dir, name), { force: true })),
      );
    });
  }

  private async siblings(mark: string): Promise<string[]> {
    const prefix = basename(this.path) + mark;
    try {
      return (await this.fs.readdir(dirname(this.path))).filter((name) => name.startsWith(prefix));
    } catch (error) {
      if (isMissing(error)) return [];
      throw error;
    }
  }
}

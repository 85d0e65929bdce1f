/**
 * The prompt cache's second tier: evaluated prefixes of a model's sequences, saved to disk when the model is unloaded
 * and restored into a sequence when it is loaded again (see docs/prompt-cache.md). It runs where the model runs (this
 * process, or its model host), under `<cache_dir>/prompts/`:
 *
 * - `<model>-<prefix>.state`: the sequence's state as llama.cpp writes it (`LlamaContextSequence.saveStateToFile`);
 * - `<model>-<prefix>.json`: its sidecar — format and version, the binding (the model file's fingerprint, the context
 *   settings, the llama.cpp release), the tokens, the state file's size and sha256, the reuse count, the scope;
 * - `<model>-<prefix>.restoring`: present while a state is being loaded, holding the loader's pid (and a token);
 * - `quarantine/`: what was refused (another binding, a bad checksum, llama.cpp refused it, a loader died on it).
 *
 * node-llama-cpp warns that loading a state made by another model may crash the process, so nothing reaches llama.cpp
 * unless its sidecar names this very binding and the file's size and sha256 are those the sidecar records. A loader
 * that dies on a file anyway (a model host: its crash is contained) leaves its `.restoring` marker behind, and the next
 * scan quarantines that file. State files are created 0600 before llama.cpp writes them and renamed into place once
 * written; sidecars are written atomically (fs/atomic-write.ts), after their state file, so a sidecar always names a
 * whole file. A budget (`cache.prompt_cache_mb`) bounds the directory: after each save, the least valuable prefixes
 * (`prefixValue`) go first.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import * as fs from "node:fs/promises";
import { basename, join } from "node:path";
import { TEMP_MARK, writeFileAtomic } from "../fs/atomic-write.js";
import { processRunning } from "./common.js";
import type { PromptStoreEvent, PromptStoreSettings } from "./types.js";

/**
 * What a saved state is valid for: the same model file version and the same context settings, on the same llama.cpp.
 * Any difference and the state is never loaded.
 */
export interface PromptBinding {
  model: { key: string; size: number; mtimeMs: number };
  context: Record<string, string | number | boolean>;
  runtime: string;
}

const FORMAT = "inferno-prompt-state";
const VERSION = 1;
/** Quarantined files kept (the newest); older ones are deleted. */
const QUARANTINE_KEEP = 8;
/** A temporary state file (or one without a sidecar) older than this was left by a writer that died: swept at a scan. */
const STALE_TEMP_MS = 3600_000;
/**
 * This process's `.restoring` markers: its pid and a token of its own, since a restarted server often gets its old pid
 * back (PID 1 in a container) and must not take the marker its crashed predecessor left for its own.
 */
const MARKER = `${process.pid} ${randomBytes(8).toString("hex")}`;

/** A sidecar as saved. */
export interface PrefixRecord {
  format: typeof FORMAT;
  version: typeof VERSION;
  binding: PromptBinding;
  /** Who may reuse it: "" for everyone, else the partition (a hashed API key) it was evaluated for. */
  scope: string;
  tokens: number[];
  state_bytes: number;
  sha256: string;
  /** Requests that reused this prefix (in memory before it was saved, and after each restore). */
  reuses: number;
  saved_at: string;
}

/** A saved prefix of this store's model, as the store lists it. */
export interface SavedPrefix {
  /** The file stem, `<model>-<prefix>`. */
  name: string;
  record: PrefixRecord;
}

/**
 * How much a saved prefix is worth keeping: each reuse saved about its length in evaluated tokens, and one more use
 * is expected. The budget evicts the lowest first; the warm-up restores the highest.
 */
export function prefixValue(prefix: { reuses: number; tokens: number }): number {
  return (1 + prefix.reuses) * prefix.tokens;
}

/**
 * Which saved prefixes to delete so the rest fits in `budgetBytes`: the least valuable first (then the oldest).
 * Pure, for table tests.
 */
export function overBudget<T extends { bytes: number; value: number; savedAt: string }>(
  entries: readonly T[],
  budgetBytes: number,
): T[] {
  let total = entries.reduce((sum, e) => sum + e.bytes, 0);
  const victims: T[] = [];
  const order = [...entries].sort((a, b) => a.value - b.value || a.savedAt.localeCompare(b.savedAt));
  for (const entry of order) {
    if (total <= budgetBytes) break;
    victims.push(entry);
    total -= entry.bytes;
  }
  return victims;
}

/** How many leading tokens two token lists share. */
export function sharedPrefix(a: readonly number[], b: readonly number[]): number {
  const length = Math.min(a.length, b.length);
  let i = 0;
  while (i < length && a[i] === b[i]) i++;
  return i;
}

function hash(text: string, length = 16): string {
  return createHash("sha256").update(text).digest("hex").slice(0, length);
}

async function fileSha256(path: string): Promise<string> {
  const digest = createHash("sha256");
  for await (const chunk of createReadStream(path)) digest.update(chunk as Buffer);
  return digest.digest("hex");
}

function isRecord(value: unknown): value is PrefixRecord {
  const r = value as Partial<PrefixRecord> | null;
  return (
    typeof r === "object" &&
    r !== null &&
    r.format === FORMAT &&
    r.version === VERSION &&
    typeof r.binding === "object" &&
    typeof r.scope === "string" &&
    Array.isArray(r.tokens) &&
    r.tokens.every((t) => Number.isInteger(t)) &&
    Number.isSafeInteger(r.state_bytes) &&
    typeof r.sha256 === "string" &&
    Number.isSafeInteger(r.reuses)
  );
}

const sorted = (o: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));

/** The binding as one comparable string (keys in a fixed order). */
function bindingText(binding: PromptBinding): string {
  return JSON.stringify([sorted(binding.model), sorted(binding.context), binding.runtime]);
}

/** The model file version and llama.cpp release of a binding, without the context settings. */
function fileText(binding: PromptBinding): string {
  return JSON.stringify([sorted(binding.model), binding.runtime]);
}

/** Bytes of every saved state under `<cacheDir>/prompts/` (0 when there is none): the figure before any model loads. */
export async function promptStoreBytes(cacheDir: string): Promise<number> {
  const dir = join(cacheDir, "prompts");
  const files = await fs.readdir(dir).catch(() => [] as string[]);
  const sizes = await Promise.all(
    files
      .filter((f) => f.endsWith(".state"))
      .map((f) =>
        fs.stat(join(dir, f)).then(
          (s) => s.size,
          () => 0,
        ),
      ),
  );
  return sizes.reduce((sum, size) => sum + size, 0);
}

/** Thrown by the loader when llama.cpp refuses a state (or returns other tokens than its sidecar names). */
class StateRefused extends Error {}

/** One model's saved prefixes (for one binding), opened when the model loads. */
export class PromptStore {
  private readonly dir: string;
  private readonly quarantineDir: string;
  private readonly modelTag: string;
  private readonly bindingKey: string;
  private prefixes: SavedPrefix[] = [];
  private diskBytes = 0;

  private constructor(
    private readonly settings: PromptStoreSettings,
    private readonly binding: PromptBinding,
    private readonly emit: (event: PromptStoreEvent) => void,
  ) {
    this.dir = join(settings.cacheDir, "prompts");
    this.quarantineDir = join(this.dir, "quarantine");
    this.modelTag = hash(binding.model.key, 12);
    this.bindingKey = bindingText(binding);
  }

  /**
   * Opens the store for a model and scans its saved prefixes: a sidecar of another binding, or one that does not
   * parse, or whose state file is not the size it records, or that a loader died on, is quarantined; leftovers of
   * writers that died are swept. Never throws for what it finds on disk; a directory it cannot create gives an empty
   * store (nothing saved).
   */
  static async open(
    settings: PromptStoreSettings,
    binding: PromptBinding,
    emit: (event: PromptStoreEvent) => void,
  ): Promise<PromptStore> {
    const store = new PromptStore(settings, binding, emit);
    await store.scan().catch(() => undefined);
    return store;
  }

  /** The saved prefixes this model may restore, most valuable first. */
  list(): readonly SavedPrefix[] {
    return this.prefixes;
  }

  /** The saved prefix sharing the most tokens with `prompt` within `scope`, with that count; undefined if none. */
  best(prompt: readonly number[], scope: string): { prefix: SavedPrefix; shared: number } | undefined {
    let best: { prefix: SavedPrefix; shared: number } | undefined;
    for (const prefix of this.prefixes) {
      if (prefix.record.scope !== scope) continue;
      const shared = sharedPrefix(prefix.record.tokens, prompt);
      if (!best || shared > best.shared) best = { prefix, shared };
    }
    return best;
  }

  private path(name: string, ext: "state" | "json" | "restoring"): string {
    return join(this.dir, `${name}.${ext}`);
  }

  private async scan(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const files = await fs.readdir(this.dir);
    const found: SavedPrefix[] = [];
    let diskBytes = 0;
    for (const file of files) {
      const path = join(this.dir, file);
      if (file.includes(TEMP_MARK)) {
        const info = await fs.stat(path).catch(() => null);
        if (info && Date.now() - info.mtimeMs > STALE_TEMP_MS) await fs.rm(path, { force: true });
        continue;
      }
      if (file.endsWith(".state")) {
        const info = await fs.stat(path).catch(() => null);
        const sidecar = files.includes(`${file.slice(0, -".state".length)}.json`);
        // A state whose writer died before its sidecar was written names nothing: swept once it is old.
        if (info && !sidecar && Date.now() - info.mtimeMs > STALE_TEMP_MS) await fs.rm(path, { force: true });
        else diskBytes += info?.size ?? 0;
      }
      if (!file.startsWith(`${this.modelTag}-`) || !file.endsWith(".json")) continue;
      const name = file.slice(0, -".json".length);
      const checked = await this.check(name);
      if (typeof checked === "string") await this.quarantine(name, checked, 0, 0);
      else if (checked) found.push(checked);
    }
    this.diskBytes = diskBytes;
    this.prefixes = found.sort((a, b) => prefixValue(byLength(b.record)) - prefixValue(byLength(a.record)));
  }

  /**
   * A sidecar as found: the prefix, a reason to quarantine it, or null when it is not this load's (another context
   * setting's) or names no state (then removed).
   */
  private async check(name: string): Promise<SavedPrefix | string | null> {
    const marker = await fs.readFile(this.path(name, "restoring"), "utf8").catch(() => null);
    if (marker !== null && marker !== MARKER) {
      const pid = Number(marker.split(" ")[0]);
      // Another live process loading it now is left alone; a dead one, or this pid from an earlier life, died on it.
      if (!Number.isSafeInteger(pid) || pid === process.pid || !processRunning(pid)) return "a loader died on it";
    }
    let record: unknown;
    try {
      record = JSON.parse(await fs.readFile(this.path(name, "json"), "utf8"));
    } catch {
      return "its sidecar does not parse";
    }
    if (!isRecord(record)) return "its sidecar is not an Inferno prompt state of this version";
    if (bindingText(record.binding) !== this.bindingKey) {
      // The same file under other context settings (`inferno run`'s one sequence, a request's own `num_ctx`): that
      // load's to restore, left in place (the budget bounds it). Another file version or llama.cpp: nothing will.
      if (typeof record.binding?.model === "object" && fileText(record.binding) === fileText(this.binding)) return null;
      return "made for another model file or llama.cpp release";
    }
    const size = (await fs.stat(this.path(name, "state")).catch(() => null))?.size;
    if (size === undefined) {
      await fs.rm(this.path(name, "json"), { force: true });
      return null;
    }
    if (size !== record.state_bytes) return `its state file has ${size} bytes, not ${record.state_bytes}`;
    return { name, record };
  }

  /**
   * Loads a saved prefix into a sequence with `load` (node-llama-cpp's `loadStateFromFile`, which returns the tokens
   * it loaded) after checking the file against its sidecar; counts the reuse unless `counted` is false (the warm-up's,
   * which no request asked for), and reports it unless `reported` is false (the same prefix put back, see
   * `LlamaTextModel.restoreWarm`). false (the prefix quarantined, or gone) when it cannot be used: the caller then has
   * an empty sequence and evaluates the prompt.
   */
  async restore(
    prefix: SavedPrefix,
    load: (path: string) => Promise<readonly number[]>,
    counted = true,
    reported = true,
  ): Promise<boolean> {
    const { name, record } = prefix;
    const state = this.path(name, "state");
    const marker = this.path(name, "restoring");
    try {
      const sha256 = await fileSha256(state);
      if (sha256 !== record.sha256)
        throw new StateRefused("its state file's sha256 is not the one its sidecar records");
      await fs.writeFile(marker, MARKER, { mode: 0o600 });
      let tokens: readonly number[];
      try {
        tokens = await load(state);
      } catch (error) {
        throw new StateRefused(`llama.cpp refused it (${(error as Error).message})`);
      }
      await fs.rm(marker, { force: true });
      if (sharedPrefix(tokens, record.tokens) !== record.tokens.length || tokens.length !== record.tokens.length) {
        throw new StateRefused("llama.cpp loaded other tokens than its sidecar names");
      }
    } catch (error) {
      if (error instanceof StateRefused) {
        await this.quarantine(name, error.message, record.tokens.length, record.state_bytes);
      } else if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        this.forget(name);
      } else throw error;
      await fs.rm(marker, { force: true }).catch(() => undefined);
      return false;
    }
    if (counted) {
      record.reuses++;
      await writeFileAtomic(this.path(name, "json"), JSON.stringify(record), { mode: 0o600 }).catch(() => undefined);
    }
    if (reported) {
      this.emit({
        action: "restored",
        tokens: record.tokens.length,
        bytes: record.state_bytes,
        diskBytes: this.diskBytes,
      });
    }
    return true;
  }

  /**
   * Saves a sequence's state (`save`: node-llama-cpp's `saveStateToFile` into the path given) with its sidecar, then
   * holds the budget. A prefix already saved with the same tokens only has its reuse count raised; `supersedes` (the
   * saved prefix the sequence was restored from, which this one extends) is deleted. Nothing bigger than the budget is
   * kept. Failures are the caller's to log: a model unloads all the same.
   */
  async save(
    tokens: readonly number[],
    scope: string,
    reuses: number,
    save: (path: string) => Promise<void>,
    supersedes?: string,
  ): Promise<void> {
    const name = `${this.modelTag}-${hash(`${scope}\u0000${tokens.join(",")}`)}`;
    const existing = this.prefixes.find((p) => p.name === name);
    if (existing) {
      existing.record.reuses = Math.max(existing.record.reuses, reuses);
      await writeFileAtomic(this.path(name, "json"), JSON.stringify(existing.record), { mode: 0o600 });
      return;
    }
    const state = this.path(name, "state");
    const temp = `${state}${TEMP_MARK}${process.pid}-${randomBytes(4).toString("hex")}`;
    try {
      // Created 0600 first: llama.cpp's writer truncates it and keeps the mode, so the state is never readable by others.
      await (await fs.open(temp, "w", 0o600)).close();
      await save(temp);
      const handle = await fs.open(temp, "r");
      const { size } = await handle.stat();
      await handle.sync();
      await handle.close();
      if (size > this.settings.budgetBytes) return;
      const record: PrefixRecord = {
        format: FORMAT,
        version: VERSION,
        binding: this.binding,
        scope,
        tokens: [...tokens],
        state_bytes: size,
        sha256: await fileSha256(temp),
        reuses,
        saved_at: new Date().toISOString(),
      };
      await fs.rename(temp, state);
      await writeFileAtomic(this.path(name, "json"), JSON.stringify(record), { mode: 0o600 });
      this.prefixes.push({ name, record });
      this.diskBytes += size;
      this.emit({ action: "saved", tokens: tokens.length, bytes: size, diskBytes: this.diskBytes });
    } finally {
      await fs.rm(temp, { force: true });
    }
    const origin = this.prefixes.find((p) => p.name === supersedes);
    // Only a prefix this one extends: it offers nothing this one does not.
    if (origin && origin.name !== name && sharedPrefix(origin.record.tokens, tokens) === origin.record.tokens.length) {
      await this.evict(origin.name, "superseded");
    }
    await this.holdBudget();
  }

  /** Deletes the least valuable prefixes of every model until the directory fits the budget. */
  private async holdBudget(): Promise<void> {
    const files = await fs.readdir(this.dir);
    const entries: Array<{ name: string; bytes: number; value: number; savedAt: string; tokens: number }> = [];
    for (const file of files) {
      if (!file.endsWith(".json")) continue;
      const name = file.slice(0, -".json".length);
      const record = await fs
        .readFile(this.path(name, "json"), "utf8")
        .then((text) => JSON.parse(text) as unknown)
        .catch(() => null);
      if (!isRecord(record)) continue;
      const { tokens, reuses, state_bytes: bytes, saved_at: savedAt } = record;
      entries.push({
        name,
        bytes,
        value: prefixValue({ reuses, tokens: tokens.length }),
        savedAt,
        tokens: tokens.length,
      });
    }
    this.diskBytes = entries.reduce((sum, e) => sum + e.bytes, 0);
    for (const victim of overBudget(entries, this.settings.budgetBytes)) {
      await this.evict(victim.name, "budget", victim);
    }
  }

  private async evict(name: string, reason: string, known?: { bytes: number; tokens: number }): Promise<void> {
    const record = this.prefixes.find((p) => p.name === name)?.record;
    const bytes = known?.bytes ?? record?.state_bytes ?? 0;
    await fs.rm(this.path(name, "json"), { force: true });
    await fs.rm(this.path(name, "state"), { force: true });
    this.forget(name);
    this.diskBytes = Math.max(0, this.diskBytes - bytes);
    const tokens = known?.tokens ?? record?.tokens.length ?? 0;
    this.emit({ action: "evicted", tokens, bytes, diskBytes: this.diskBytes, reason });
  }

  private forget(name: string): void {
    this.prefixes = this.prefixes.filter((p) => p.name !== name);
  }

  /** Moves a prefix's files aside (the newest `QUARANTINE_KEEP` kept), so it is never offered again. */
  private async quarantine(name: string, reason: string, tokens: number, bytes: number): Promise<void> {
    this.forget(name);
    await fs.mkdir(this.quarantineDir, { recursive: true, mode: 0o700 });
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    for (const ext of ["json", "state", "restoring"] as const) {
      const from = this.path(name, ext);
      await fs.rename(from, join(this.quarantineDir, `${basename(from)}.${stamp}`)).catch(() => undefined);
    }
    const stateBytes = bytes;
    this.diskBytes = Math.max(0, this.diskBytes - stateBytes);
    await this.pruneQuarantine();
    this.emit({ action: "quarantined", tokens, bytes, diskBytes: this.diskBytes, reason });
  }

  private async pruneQuarantine(): Promise<void> {
    const files = await fs.readdir(this.quarantineDir).catch(() => [] as string[]);
    const dated = await Promise.all(
      files.map(async (file) => ({
        file,
        at: (await fs.stat(join(this.quarantineDir, file)).catch(() => null))?.mtimeMs ?? 0,
      })),
    );
    dated.sort((a, b) => b.at - a.at);
    for (const { file } of dated.slice(QUARANTINE_KEEP * 2))
      await fs.rm(join(this.quarantineDir, file), { force: true });
  }
}

function byLength(record: PrefixRecord): { reuses: number; tokens: number } {
  return { reuses: record.reuses, tokens: record.tokens.length };
}

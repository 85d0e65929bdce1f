/**
 * ModelManager: which models exist, what a name means, what a file holds, whether it is sound, and how much memory it
 * will take — all without loading weights. It is the filesystem-backed `ModelSource` the cache uses.
 */
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { access, realpath, stat } from "node:fs/promises";
import { basename, isAbsolute, join, resolve as resolvePath } from "node:path";
import type { BackendConfig, InfernoConfig, Preset } from "../config/schema.js";
import { closestMatches } from "../config/keys.js";
import { currentEnvironment } from "../config/paths.js";
import { BadRequest, ModelAmbiguous, ModelInvalid, ModelNotFound, ModelOutsideModelsDir } from "../errors/index.js";
import { type Catalog, scanCatalog } from "./catalog.js";
import { FileDigests } from "./digests.js";
import { type FoundModel, formatOf, isInside, scanIsStale } from "./discovery.js";
import { ggufMetadata, readGgufHeader } from "./gguf-reader.js";
import { GGUF_FIXED_OVERHEAD_BYTES, MODEL_HOST_OVERHEAD_BYTES } from "./overhead.js";
import { NAME_STAGES, NameIndex, namesOf, stem } from "./name-index.js";
import { readOnnxMetadata } from "./onnx-reader.js";
import {
  fileKeyOf,
  type LoadSettings,
  parseVariant,
  presetDescriptor,
  presetNamed,
  type SequenceCost,
  type Sequences,
  sequencesFor,
  variantSuffix,
  withLoadSettings,
} from "./load-settings.js";
import { readSplitGgufHeader } from "./split.js";
import { type StoreEnvironment, type StoreLocation, storeLocations } from "./stores/index.js";
import { MAX_MODEL_NAME_CHARS, sameFileVersion } from "./types.js";
import type {
  Bytes,
  Fingerprint,
  GgufMetadata,
  ModelDescriptor,
  ModelInfo,
  ModelMetadata,
  ModelSource,
} from "./types.js";

export interface ModelManagerOptions {
  /**
   * Accept names that resolve outside the models directories and stores: absolute paths, `..`, and symlinks whose
   * target is outside. Default false (config: `allow_outside_models_dir`).
   */
  allowOutsideModelsDir?: boolean;
  /** Stores of other tools to discover models in, read-only, after the models directories (config: `model_stores`). */
  stores?: readonly StoreLocation[];
  /**
   * Where verified file hashes are remembered across processes (see digests.ts); in memory only when absent.
   * `fromConfig` uses `<cache.cache_dir>/file_digests.json`.
   */
  digestFile?: string;
  /** Model presets by name (config: `[models."NAME"]`): names of their own, resolved before the files' names. */
  presets?: Readonly<Record<string, Preset>>;
}

/** The outcome of validating one model. */
export type ValidationResult =
  | { model: ModelDescriptor; ok: true; metadata: ModelMetadata }
  | { model: ModelDescriptor; ok: false; error: ModelInvalid };

export interface HashOption {
  /** Also compute the sha256 of the whole file (reads every byte). Default false. */
  hash?: boolean;
}

/**
 * Memory of a loaded ONNX model as a multiple of its file size: the weights once, plus ONNX Runtime's optimised copies
 * and its arena. Measured on the PP-OCR models at 1.5–2×; 2 keeps the estimate on the safe side.
 */
export const ONNX_MEMORY_FACTOR = 2;

/**
 * A GGUF model's expected memory loaded with `backend`, split by sequences: fixed are its tensor bytes, the compute
 * buffers of one batch (f32 logits over the vocabulary, and activations four times the widest layer), a fixed overhead
 * and, with `isolation = "process"`, the model host it runs in (`MODEL_HOST_OVERHEAD_BYTES`, which the measured figure
 * includes); per sequence its f16 KV cache of `context_size` tokens (2 (K and V) × layers × context × kv_heads ×
 * head_dim × 2 bytes).
 */
export function ggufSequenceCost(metadata: GgufMetadata, backend: BackendConfig): SequenceCost {
  const context = backend.context_size;
  const headDim = metadata.headCount > 0 ? metadata.embeddingLength / metadata.headCount : 0;
  const batch = Math.min(backend.batch_size, context);
  const logits = batch * metadata.vocabularySize * 4;
  const activations = batch * metadata.embeddingLength * 4 * 4;
  const host = backend.isolation === "process" ? MODEL_HOST_OVERHEAD_BYTES : 0;
  return {
    fixedBytes: metadata.tensorBytes + logits + activations + GGUF_FIXED_OVERHEAD_BYTES + host,
    perSequenceBytes: 2 * metadata.blockCount * context * metadata.headCountKv * headDim * 2,
  };
}

/**
 * Expected bytes of a GGUF model loaded with `backend` (`ggufSequenceCost`) with the sequences it gets
 * (`sequencesFor`: auto resolved against `roomBytes`, the memory the cache's limit leaves it; Infinity: the machine
 * rule's number).
 */
export function estimateGgufMemory(metadata: GgufMetadata, backend: BackendConfig, roomBytes: Bytes = Infinity): Bytes {
  const cost = ggufSequenceCost(metadata, backend);
  const { count } = sequencesFor(backend.parallel, cost, roomBytes);
  return Math.ceil(cost.fixedBytes + count * cost.perSequenceBytes);
}

/**
 * Name lookups check the models directory for changes at most this often (ms). A name not in the index is checked for
 * at once, so a file added a moment ago is still found; a hit never waits for a check.
 */
export const FOLDER_CHECK_INTERVAL_MS = 1000;

/** Ollama's default tag, which every name may carry. */
export const LATEST_TAG = ":latest";

export class ModelManager implements ModelSource {
  /** The first models directory, absolute. */
  readonly modelsDir: string;
  /** Every models directory, absolute, in search order (`modelsDir` first). */
  readonly modelsDirs: readonly string[];
  /** The store locations searched after the directories. */
  readonly stores: readonly StoreLocation[];
  private readonly allowOutside: boolean;
  private readonly digests: FileDigests;
  private readonly presets: Readonly<Record<string, Preset>>;
  private scan: Catalog | undefined;
  private scanning: Promise<Catalog> | undefined;
  /** The name index of the current scan, and when (monotonic ms) the folders were last checked for changes. */
  private index = new NameIndex<FoundModel>([]);
  private checkedAt = -Infinity;
  /** Set by a timer when the next folder check is due, so a lookup reads no clock. */
  private checkDue = true;
  /** Descriptors of names resolved since the last rescan: the synchronous `lookup` answers from these. */
  private resolved = new Map<string, ModelDescriptor>();
  /**
   * Header metadata per model key and file version. The promise is kept from the first read on, so the callers of one
   * cold load (the memory estimate and the cache's GGUF facts ask at once) share one read of the header.
   */
  private readonly metadataCache = new Map<string, { fingerprint: Fingerprint; metadata: Promise<ModelMetadata> }>();

  /** @param modelsDirs One models directory, or several in search order. */
  constructor(modelsDirs: string | readonly string[], options: ModelManagerOptions = {}) {
    const dirs = (typeof modelsDirs === "string" ? [modelsDirs] : [...modelsDirs]).map((d) => resolvePath(d));
    if (dirs.length === 0) throw new RangeError("a ModelManager needs at least one models directory");
    this.modelsDirs = [...new Set(dirs)];
    this.modelsDir = this.modelsDirs[0] as string;
    this.stores = options.stores ?? [];
    this.allowOutside = options.allowOutsideModelsDir === true;
    this.digests = new FileDigests(options.digestFile);
    this.presets = options.presets ?? {};
  }

  /**
   * The manager a loaded configuration describes: `models_dirs` (with `models_dir` first), the stores of `model_stores`
   * located through `environment` (default: this process's variables and home), `allow_outside_models_dir`, and verified
   * hashes kept in the cache directory. `storesOverride` replaces `model_stores` (`models list --stores`).
   */
  static fromConfig(
    config: Pick<InfernoConfig, "models_dir" | "models_dirs" | "model_stores" | "allow_outside_models_dir" | "cache"> &
      Partial<Pick<InfernoConfig, "models">>,
    environment: StoreEnvironment = currentEnvironment(),
    storesOverride?: InfernoConfig["model_stores"],
  ): ModelManager {
    return new ModelManager(config.models_dirs.length > 0 ? config.models_dirs : [config.models_dir], {
      allowOutsideModelsDir: config.allow_outside_models_dir,
      stores: storeLocations(storesOverride ?? config.model_stores, environment),
      digestFile: join(config.cache.cache_dir, "file_digests.json"),
      ...(config.models ? { presets: config.models } : {}),
    });
  }

  /**
   * Every discoverable model, sorted by name. Each model's own name is then known to `lookup`, as if it had been
   * resolved: the cache's warm-up lists the models, so the first request after it takes the synchronous hit path too.
   */
  async list(): Promise<ModelDescriptor[]> {
    const scan = await this.currentScan(true);
    const found = [...scan.models, ...this.allowedEscapes(scan)].sort((a, b) => a.name.localeCompare(b.name));
    const descriptors = await Promise.all(found.map((m) => this.describe(m).catch(() => null)));
    const listed = descriptors.filter((d): d is ModelDescriptor => d !== null);
    for (const descriptor of listed) this.remember(descriptor.name, descriptor, scan);
    // Presets are models of their own names (one whose file is missing is left out; resolving it says why).
    const presets = await Promise.all(Object.keys(this.presets).map((name) => this.resolve(name).catch(() => null)));
    return [...listed, ...presets.filter((d): d is ModelDescriptor => d !== null)].sort((a, b) =>
      a.name.localeCompare(b.name),
    );
  }

  /** `name` resolves to `descriptor` (a model of `scan`) for `lookup`, unless a rescan came meanwhile or the name is ambiguous. */
  private remember(name: string, descriptor: ModelDescriptor, scan: Catalog): void {
    if (this.scan !== scan) return;
    const hits = this.index.match(name);
    if (hits.length === 1 && hits[0]?.key === fileKeyOf(descriptor.key)) this.resolved.set(name, descriptor);
  }

  /**
   * Resolves a name: a path relative to the models directory (`llama/tiny.gguf`), the same without extension, a file
   * name (`tiny.gguf`) or a file stem (`tiny`). Absolute paths and `..` are accepted only when inside the directory or
   * when outside names are allowed.
   */
  async resolve(name: string): Promise<ModelDescriptor> {
    if (name.length > MAX_MODEL_NAME_CHARS) {
      throw new BadRequest(
        `model name of ${name.length} characters, more than any model's name (at most ${MAX_MODEL_NAME_CHARS})`,
        { details: { param: "model", length: name.length, limit: MAX_MODEL_NAME_CHARS } },
      );
    }
    const trimmed = name.trim();
    if (trimmed === "") throw new ModelNotFound("no model name given", { details: { name } });
    const { base, settings } = parseVariant(trimmed);
    if (base !== trimmed) {
      const variant = variantOf(await this.resolve(base), settings);
      if (this.resolved.get(base)?.key === fileKeyOf(variant.key)) this.resolved.set(trimmed, variant);
      return variant;
    }
    const preset = presetNamed(this.presets, trimmed);
    if (preset) {
      const scan = this.scan;
      const file = await this.resolveFile(preset.preset.file ?? preset.name);
      const descriptor = presetDescriptor(file, preset.name, preset.preset);
      if (scan !== undefined && this.scan === scan) this.resolved.set(trimmed, descriptor);
      return descriptor;
    }
    return this.resolveFile(trimmed);
  }

  /** Resolves a name of a file (not a preset): see `resolve`. */
  private async resolveFile(trimmed: string): Promise<ModelDescriptor> {
    if (isAbsolute(trimmed) || trimmed.split(/[\\/]/).includes("..")) return this.resolvePath(trimmed);
    let scan = await this.currentScan();
    let hits = this.index.match(trimmed);
    // Not known: the folders may have changed since the last (rate-limited) check; look now before saying no.
    if (hits.length === 0 && !this.scanning) {
      scan = await this.currentScan(true);
      hits = this.index.match(trimmed);
    }
    // Ollama's default tag: `NAME:latest` is `NAME` when no model has that exact name (`tiny:latest` for tiny.gguf).
    if (hits.length === 0 && trimmed.endsWith(LATEST_TAG))
      hits = this.index.match(trimmed.slice(0, -LATEST_TAG.length));
    if (hits.length === 1) {
      const descriptor = await this.describe(hits[0] as FoundModel);
      this.remember(trimmed, descriptor, scan);
      return descriptor;
    }
    if (hits.length > 1) {
      const names = hits.map((h) => h.name);
      throw new ModelAmbiguous(
        `model name "${trimmed}" is ambiguous: it matches ${names.join(", ")}; use one of these names`,
        {
          details: { name: trimmed, candidates: names },
        },
      );
    }
    const escaping = [...scan.escaping].find(([linkName]) =>
      NAME_STAGES.some((spell) => spell({ name: linkName }).includes(trimmed)),
    );
    if (escaping) throw this.outside(trimmed, escaping[1]);
    throw this.notFound(trimmed, scan);
  }

  /**
   * A name resolved before, answered without I/O (the cache's synchronous hit path); undefined when it must be resolved.
   * When a folder check is due it starts one in the background: the answer stands until that check finds a change.
   */
  lookup(name: string): ModelDescriptor | undefined {
    if (this.checkDue && !this.scanning) void this.currentScan().catch(() => {});
    return this.resolved.get(name);
  }

  /** Whether every models directory exists and can be read (false: one is absent, unmounted or unreadable). */
  async available(): Promise<boolean> {
    const readable = async (dir: string) => {
      try {
        if (!(await stat(dir)).isDirectory()) return false;
        await access(dir, constants.R_OK | constants.X_OK);
        return true;
      } catch {
        return false;
      }
    };
    // Every models directory must be there. Stores are optional (LM Studio's older folder is usually absent), so a
    // store that is gone counts its models as missing, which missing_retention_days keeps for a while.
    return (await Promise.all(this.modelsDirs.map(readable))).every(Boolean);
  }

  /** The shortest name that resolves to each discoverable model, by the model's name (see `shortestNames`). */
  async shortNames(): Promise<Map<string, string>> {
    await this.currentScan();
    return this.index.shortestNames();
  }

  /** The descriptor and header metadata of a model. Throws ModelInvalid when the file is not a sound model. */
  async info(name: string): Promise<ModelInfo> {
    const model = await this.resolve(name);
    return { ...model, metadata: await this.metadata(model) };
  }

  /**
   * Header metadata of a resolved model, remembered until its file changes. Throws ModelInvalid for a model its
   * discovery found unusable (a bad store manifest, a missing split part), with the reason.
   */
  async metadata(model: ModelDescriptor): Promise<ModelMetadata> {
    const fileKey = fileKeyOf(model.key);
    const found = await this.found(fileKey);
    if (found?.problem) {
      throw new ModelInvalid(`model ${model.name} is invalid: ${found.problem}`, {
        details: { name: model.name, path: model.path, problem: found.problem },
      });
    }
    const current = await this.fingerprint(fileKey);
    if (!current)
      throw new ModelNotFound(`model file ${model.path} no longer exists`, {
        details: { name: model.name, path: model.path },
      });
    const cached = this.metadataCache.get(fileKey);
    if (cached && sameFileVersion(cached.fingerprint, current)) return cached.metadata;
    const metadata =
      model.format === "onnx"
        ? readOnnxMetadata(model.path)
        : (found?.parts ? readSplitGgufHeader(found.parts) : readGgufHeader(model.path)).then(ggufMetadata);
    const record = { fingerprint: current, metadata };
    this.metadataCache.set(fileKey, record);
    // A failed read is not remembered: the next call reads again (the file may be complete by then).
    metadata.catch(() => {
      if (this.metadataCache.get(fileKey) === record) this.metadataCache.delete(fileKey);
    });
    return metadata;
  }

  /** Validates one model by name, or every discoverable model. Never throws ModelInvalid: it is in the results. */
  async validate(name?: string, options: HashOption = {}): Promise<ValidationResult[]> {
    const models = name === undefined ? await this.list() : [await this.resolve(name)];
    const results: ValidationResult[] = [];
    for (const model of models) results.push(await this.validateOne(model, options));
    return results;
  }

  private async validateOne(model: ModelDescriptor, options: HashOption): Promise<ValidationResult> {
    try {
      const metadata = await this.metadata(model);
      if (options.hash) await this.verifyDigest(model);
      const fingerprint = options.hash
        ? ((await this.fingerprint(model.key, { hash: true })) ?? model.fingerprint)
        : model.fingerprint;
      return { model: { ...model, fingerprint }, ok: true, metadata };
    } catch (error) {
      if (error instanceof ModelInvalid) return { model, ok: false, error };
      throw error;
    }
  }

  /**
   * Size and mtime of the file with this key (its real path), with sha256 when asked (computed once per file version);
   * null when the file is gone. A split GGUF's fingerprint covers its parts: their total size and newest mtime. A
   * variant's key (load-settings.ts) is its file's.
   */
  async fingerprint(variantKey: string, options: HashOption = {}): Promise<Fingerprint | null> {
    const key = fileKeyOf(variantKey);
    let info;
    try {
      info = await stat(key);
    } catch {
      return null;
    }
    const fingerprint: Fingerprint = { size: info.size, mtimeMs: info.mtimeMs };
    const parts = (await this.found(key))?.parts;
    if (parts) {
      const others = await Promise.all(parts.slice(1).map((p) => stat(p).catch(() => null)));
      for (const part of others) {
        if (!part) continue;
        fingerprint.size += part.size;
        fingerprint.mtimeMs = Math.max(fingerprint.mtimeMs, part.mtimeMs);
      }
    }
    if (options.hash && info.isFile())
      fingerprint.sha256 = await this.digests.sha256(key, { size: info.size, mtimeMs: info.mtimeMs });
    return fingerprint;
  }

  /**
   * Bytes the model is expected to take once loaded with these settings, auto `parallel` with as many sequences as fit
   * `roomBytes` (see `estimateGgufMemory`, `ONNX_MEMORY_FACTOR`). The cache asks this before every load, so this is also where a store blob is checked against
   * the digest its store names: once per version of the file (a size or mtime change), remembered across processes.
   */
  async estimateMemory(model: ModelDescriptor, backend: BackendConfig, roomBytes: Bytes = Infinity): Promise<Bytes> {
    const metadata = await this.metadata(model);
    await this.verifyDigest(model);
    if (metadata.format === "gguf")
      return estimateGgufMemory(metadata, withLoadSettings(backend, model.load), roomBytes);
    return Math.ceil(model.fingerprint.size * ONNX_MEMORY_FACTOR);
  }

  /**
   * The sequences a load of this GGUF model with these settings gets when `roomBytes` of memory are left to it
   * (`sequencesFor`; null for other formats): the cache asks before the estimate, and loads with the count.
   */
  async sequences(model: ModelDescriptor, backend: BackendConfig, roomBytes: Bytes): Promise<Sequences | null> {
    const metadata = await this.metadata(model);
    if (metadata.format !== "gguf") return null;
    const config = withLoadSettings(backend, model.load);
    return sequencesFor(config.parallel, ggufSequenceCost(metadata, config), roomBytes);
  }

  /** Throws ModelInvalid when the model's store names a sha256 its file does not have (hashing a file version once). */
  private async verifyDigest(model: ModelDescriptor): Promise<void> {
    const key = fileKeyOf(model.key);
    const expected = (await this.found(key))?.sha256;
    if (!expected) return;
    const info = await stat(key).catch(() => null);
    if (!info)
      throw new ModelNotFound(`model file ${key} no longer exists`, {
        details: { name: model.name, path: key },
      });
    await this.digests.verify({ name: model.name, path: key }, { size: info.size, mtimeMs: info.mtimeMs }, expected);
  }

  /**
   * What the scan found under this key, if anything: split parts, a store's digest, a problem. The last scan serves
   * (descriptors come from `resolve`/`list`, which refresh it); a manager that has not scanned yet scans first, so a
   * fingerprint asked for right after a restart covers a split's parts too.
   */
  private async found(key: string): Promise<FoundModel | undefined> {
    return (this.scan ?? (await this.currentScan())).byKey.get(key);
  }

  /**
   * The scan, rescanning only when a walked directory changed. Checks for changes at most every
   * `FOLDER_CHECK_INTERVAL_MS` unless `force`. Concurrent callers share one rescan.
   */
  private async currentScan(force = false): Promise<Catalog> {
    if (this.scanning) return this.scanning;
    const now = performance.now();
    if (this.scan && !force && now - this.checkedAt < FOLDER_CHECK_INTERVAL_MS) return this.scan;
    this.scanning = (async () => {
      const stale = !this.scan || (await scanIsStale(this.scan));
      this.checkedAt = performance.now();
      this.checkDue = false;
      setTimeout(() => (this.checkDue = true), FOLDER_CHECK_INTERVAL_MS).unref();
      if (!stale) return this.scan as Catalog;
      const scan = await scanCatalog(this.modelsDirs, this.stores);
      this.scan = scan;
      this.index = new NameIndex([...scan.models, ...this.allowedEscapes(scan)]);
      this.resolved = new Map();
      return scan;
    })().finally(() => {
      this.scanning = undefined;
    });
    return this.scanning;
  }

  private allowedEscapes(scan: Catalog): FoundModel[] {
    if (!this.allowOutside) return [];
    return [...scan.escaping].map(([name, target]) => ({
      name,
      path: target,
      key: target,
      format: formatOf(name) ?? "gguf",
    }));
  }

  private async describe(model: FoundModel): Promise<ModelDescriptor> {
    const fingerprint = await this.fingerprint(model.key);
    if (!fingerprint)
      throw new ModelNotFound(`model file ${model.path} no longer exists`, {
        details: { name: model.name, path: model.path },
      });
    const path = model.parts ? model.path : model.key;
    const descriptor: ModelDescriptor = {
      name: model.name,
      key: model.key,
      path,
      format: model.format,
      fingerprint,
      ...(model.store ? { store: model.store } : {}),
    };
    return model.modelfile ? withModelfile(descriptor, model.modelfile) : descriptor;
  }

  /**
   * A name with `..` or an absolute path: allowed inside a models directory or store, outside only when configured. A
   * file the scan knows (a store blob, a split's first part) keeps its name and what the scan knows about it.
   */
  private async resolvePath(name: string): Promise<ModelDescriptor> {
    const absolute = resolvePath(this.modelsDir, name);
    const scan = await this.currentScan();
    const roots = [...this.modelsDirs, ...this.stores.map((s) => s.root), ...scan.roots];
    const within = (path: string) => roots.find((root) => isInside(root, path));
    if (!within(absolute) && !this.allowOutside) throw this.outside(name, absolute);
    let real: string;
    try {
      real = await realpath(absolute);
    } catch {
      throw this.notFound(name, scan);
    }
    const root = scan.roots.find((r) => isInside(r, real));
    if (!root && !this.allowOutside) throw this.outside(name, real);
    const known = scan.byKey.get(real);
    if (known) return this.describe(known);
    const format = formatOf(real) ?? formatOf(absolute);
    if (!format) {
      throw new ModelInvalid(`${name} is not a model file: expected a .gguf or .onnx file`, {
        details: { name, path: real },
      });
    }
    const displayName = root ? relativeName(root, real) : real;
    return this.describe({ name: displayName, path: real, key: real, format });
  }

  /** The models directories and store roots, as messages name them. */
  private places(): string {
    const dirs =
      this.modelsDirs.length === 1
        ? `the models directory ${this.modelsDir}`
        : `the models directories ${this.modelsDirs.join(", ")}`;
    return this.stores.length === 0
      ? dirs
      : `${dirs} and the stores ${[...new Set(this.stores.map((s) => s.store))].join(", ")}`;
  }

  private outside(name: string, target: string): ModelOutsideModelsDir {
    return new ModelOutsideModelsDir(
      `model "${name}" resolves to ${target}, outside ${this.places()}; set allow_outside_models_dir = true to allow it`,
      { details: { name, target, models_dir: this.modelsDir, models_dirs: this.modelsDirs } },
    );
  }

  private notFound(name: string, scan: Catalog): ModelNotFound {
    const names = scan.models.flatMap(namesOf);
    const suggestions = closestMatches(name, [...new Set([...names, ...names.map((n) => stem(basename(n)))])]);
    const dirs = this.modelsDirs.length === 1 ? "the models directory" : "the models directories";
    const absent = scan.roots.length === 0 && this.modelsDirs.length === 1 ? ", which does not exist" : "";
    const stores = this.stores.filter((s) => scan.roots.includes(s.root));
    const storeText =
      stores.length === 0 ? "" : ` and the stores ${stores.map((s) => `${s.store} (${s.root})`).join(", ")}`;
    const where = `looked in ${dirs} ${this.modelsDirs.join(", ")}${absent}${storeText}`;
    const hint = suggestions.length > 0 ? `; did you mean ${suggestions.map((s) => `"${s}"`).join(", ")}?` : "";
    const add = `put a .gguf or .onnx file in ${this.modelsDir}, or add a directory with --models-dir DIR, INFERNO_MODELS_DIR=DIR or models_dirs = ["DIR"] in the configuration`;
    return new ModelNotFound(`model "${name}" not found (${where})${hint}${hint ? " " : ". "}To add models: ${add}`, {
      details: { name, models_dir: this.modelsDir, models_dirs: this.modelsDirs, suggestions },
    });
  }
}

/**
 * A store model with its Modelfile (Ollama's `PARAMETER`s, `SYSTEM` and `TEMPLATE`): its load settings and defaults. Its key names
 * the Modelfile's content (`#preset=modelfile-<hash>`), so tags of one blob with the same Modelfile stay one entry and
 * tags with different ones are two.
 */
function withModelfile(descriptor: ModelDescriptor, modelfile: NonNullable<FoundModel["modelfile"]>): ModelDescriptor {
  const { load } = modelfile;
  const defaults = { ...modelfile.defaults, ...(modelfile.template ? { goTemplate: modelfile.template } : {}) };
  if (Object.keys(load).length === 0 && Object.keys(defaults).length === 0) return descriptor;
  const hash = createHash("sha256")
    .update(JSON.stringify([load, defaults]))
    .digest("hex")
    .slice(0, 12);
  return {
    ...descriptor,
    key: `${descriptor.key}${variantSuffix({ preset: `modelfile-${hash}`, ...load })}`,
    ...(Object.keys(load).length > 0 ? { load } : {}),
    ...(Object.keys(defaults).length > 0 ? { defaults } : {}),
  };
}

/** `model` loaded with `settings` over its own: another key and name (see load-settings.ts). */
export function variantOf(model: ModelDescriptor, settings: LoadSettings): ModelDescriptor {
  if (Object.keys(settings).length === 0) return model;
  const { base, settings: own } = parseVariant(model.name);
  const load = { ...model.load, ...settings };
  return {
    ...model,
    name: `${base}${variantSuffix({ ...own, ...settings })}`,
    key: `${fileKeyOf(model.key)}${variantSuffix({ preset: parseVariant(model.key).settings.preset, ...load })}`,
    load,
  };
}

function relativeName(root: string, path: string): string {
  return path
    .slice(root.length + 1)
    .split(/[\\/]/)
    .join("/");
}

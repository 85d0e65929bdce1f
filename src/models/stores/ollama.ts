/**
 * Ollama's model store, read-only: `<root>/manifests/HOST/NAMESPACE/MODEL/TAG` are JSON manifests whose layer of media
 * type `application/vnd.ollama.image.model` names a GGUF blob `<root>/blobs/sha256-<hex>` (no `.gguf` extension) by
 * digest and size. Models are named as `ollama list` names them: `MODEL:TAG` for the default registry and namespace
 * (`registry.ollama.ai/library`), `NAMESPACE/MODEL:TAG` for other namespaces there, `HOST/NAMESPACE/MODEL:TAG`
 * elsewhere; a `latest` tag is also reachable without it (`MODEL`).
 *
 * Integrity: the blob's size is compared with the manifest's at every scan (a stat); its sha256 is compared with the
 * digest before the blob is loaded, once per version of the file (see digests.ts). A manifest that is not JSON, has no
 * model layer, or names a missing or wrong-sized blob lists that model as invalid with the reason; others are unaffected.
 */
import { readdir, readFile, realpath, stat } from "node:fs/promises";
import { join } from "node:path";
import { mtimeNs, openStoreScan, type FoundModel, type Scan } from "../discovery.js";
import type { LoadSettings } from "../load-settings.js";
import type { ModelDefaults } from "../types.js";

export const OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model";
const DEFAULT_HOST = "registry.ollama.ai";
const DEFAULT_NAMESPACE = "library";
const DIGEST = /^sha256:([0-9a-f]{64})$/;

/** The name Ollama gives the model of a manifest at `HOST/NAMESPACE/MODEL/TAG` under `manifests/`. */
export function ollamaName([host, namespace, model, tag]: readonly string[]): string {
  if (host === DEFAULT_HOST && namespace === DEFAULT_NAMESPACE) return `${model}:${tag}`;
  if (host === DEFAULT_HOST) return `${namespace}/${model}:${tag}`;
  return `${host}/${namespace}/${model}:${tag}`;
}

/** The blob file a `sha256:<hex>` digest is stored in. */
export function ollamaBlobPath(root: string, digest: string): string {
  return join(root, "blobs", digest.replace(":", "-"));
}

type ModelLayer = { sha256: string; size: number; digest: string };

/** The model layer of a manifest's text, or the reason there is none. */
export function parseOllamaManifest(text: string): ModelLayer | { problem: string } {
  let manifest: unknown;
  try {
    manifest = JSON.parse(text);
  } catch (error) {
    return { problem: `manifest is not JSON (${(error as Error).message})` };
  }
  const layers = (manifest as { layers?: unknown } | null)?.layers;
  if (!Array.isArray(layers)) return { problem: "manifest has no layers list" };
  const layer = layers.find((l) => (l as { mediaType?: unknown } | null)?.mediaType === OLLAMA_MODEL_LAYER) as
    { digest?: unknown; size?: unknown } | undefined;
  if (!layer) return { problem: `manifest has no model layer (${OLLAMA_MODEL_LAYER})` };
  const match = typeof layer.digest === "string" ? DIGEST.exec(layer.digest) : null;
  if (!match) return { problem: `model layer digest ${JSON.stringify(layer.digest)} is not a sha256:<64 hex> digest` };
  if (typeof layer.size !== "number" || !Number.isSafeInteger(layer.size) || layer.size < 0) {
    return { problem: `model layer size ${JSON.stringify(layer.size)} is not a byte count` };
  }
  return { sha256: match[1] as string, size: layer.size, digest: layer.digest as string };
}

/** The Modelfile layers Inferno honours: `PARAMETER`s (a JSON object), `SYSTEM` and `TEMPLATE` (text). */
const PARAMS_LAYER = "application/vnd.ollama.image.params";
const SYSTEM_LAYER = "application/vnd.ollama.image.system";
/** A Go template, run when it keeps to the subset ../go-template.ts runs (else the GGUF file's own template is). */
const TEMPLATE_LAYER = "application/vnd.ollama.image.template";

/** What a model's Modelfile gives it: load settings (`num_ctx`, `num_thread`, `num_gpu`) and defaults. */
export interface OllamaModelfile {
  load: LoadSettings;
  defaults: ModelDefaults;
  /** The Modelfile's `TEMPLATE` (Go template syntax): the model's `defaults.goTemplate` (see manager.ts). */
  template?: string;
}

/** Ollama's `PARAMETER` names as Inferno's. */
const PARAMETERS: Record<string, { load?: keyof LoadSettings; option?: keyof ModelDefaults }> = {
  num_ctx: { load: "context_size" },
  num_thread: { load: "threads" },
  num_gpu: { load: "gpu_layers" },
  temperature: { option: "temperature" },
  top_k: { option: "topK" },
  top_p: { option: "topP" },
  min_p: { option: "minP" },
  repeat_penalty: { option: "repeatPenalty" },
  repeat_last_n: { option: "repeatLastN" },
  presence_penalty: { option: "presencePenalty" },
  frequency_penalty: { option: "frequencyPenalty" },
  seed: { option: "seed" },
  num_predict: { option: "maxTokens" },
};

/**
 * The Modelfile of a manifest: its `params` layer (JSON: `{"num_ctx": 4096, "stop": [...], …}`) and `system` layer
 * (text), read from their blobs; a layer whose blob is missing or unreadable is left out (the model still runs, as with
 * Ollama's defaults). Parameters Inferno does not know are ignored, as Ollama ignores unknown options.
 */
export async function readOllamaModelfile(root: string, manifestText: string): Promise<OllamaModelfile | undefined> {
  const layers = ((JSON.parse(manifestText) as { layers?: unknown }).layers ?? []) as Array<{
    mediaType?: unknown;
    digest?: unknown;
  }>;
  const read = async (mediaType: string) => {
    const layer = layers.find((l) => l?.mediaType === mediaType);
    if (typeof layer?.digest !== "string" || !DIGEST.test(layer.digest)) return undefined;
    return readFile(ollamaBlobPath(root, layer.digest), "utf8").catch(() => undefined);
  };
  const [paramsText, system, template] = await Promise.all([
    read(PARAMS_LAYER),
    read(SYSTEM_LAYER),
    read(TEMPLATE_LAYER),
  ]);
  const modelfile: OllamaModelfile = { load: {}, defaults: {} };
  let params: Record<string, unknown> = {};
  try {
    params = paramsText ? (JSON.parse(paramsText) as Record<string, unknown>) : {};
  } catch {
    params = {};
  }
  for (const [name, value] of Object.entries(params)) {
    const target = PARAMETERS[name];
    if (target?.load && typeof value === "number" && Number.isInteger(value) && value >= 0) {
      modelfile.load[target.load] = value;
    } else if (target?.option && typeof value === "number") {
      (modelfile.defaults[target.option] as number) = value;
    } else if (name === "stop") {
      const stops = (Array.isArray(value) ? value : [value]).filter((v): v is string => typeof v === "string");
      if (stops.length > 0) modelfile.defaults.stop = stops;
    }
  }
  if (system !== undefined && system !== "") modelfile.defaults.system = system;
  if (template !== undefined && template !== "") modelfile.template = template;
  const empty = Object.keys(modelfile.load).length === 0 && Object.keys(modelfile.defaults).length === 0;
  return empty && modelfile.template === undefined ? undefined : modelfile;
}

/** Manifest files four levels under `manifests/` (HOST/NAMESPACE/MODEL/TAG), with the directories walked. */
async function manifestFiles(
  dir: string,
  segments: string[],
  scan: Scan,
  out: Array<{ path: string; segments: string[] }>,
) {
  scan.directories.set(dir, await mtimeNs(dir));
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    if (entry.name.startsWith(".")) continue;
    const path = join(dir, entry.name);
    const next = [...segments, entry.name];
    if (next.length < 4 && entry.isDirectory()) await manifestFiles(path, next, scan, out);
    else if (next.length === 4 && (entry.isFile() || entry.isSymbolicLink())) out.push({ path, segments: next });
  }
}

async function modelOf(root: string, manifest: string, name: string, scan: Scan): Promise<FoundModel> {
  const latest = name.endsWith(":latest") ? { aliases: [name.slice(0, -":latest".length)] } : {};
  const invalid = async (problem: string): Promise<FoundModel> => {
    const key = await realpath(manifest).catch(() => manifest);
    return { name, path: manifest, key, format: "gguf", store: "ollama", problem, ...latest };
  };
  scan.directories.set(manifest, await mtimeNs(manifest));
  let text: string;
  try {
    text = await readFile(manifest, "utf8");
  } catch (error) {
    return invalid(`manifest cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const layer = parseOllamaManifest(text);
  if ("problem" in layer) return invalid(layer.problem);
  const blob = ollamaBlobPath(root, layer.digest);
  let key: string;
  let size: number;
  try {
    key = await realpath(blob);
    size = (await stat(key)).size;
  } catch {
    return invalid(`blob ${layer.digest.replace(":", "-")} named by the manifest is missing`);
  }
  if (size !== layer.size) {
    return invalid(`blob ${layer.digest.replace(":", "-")} has ${size} bytes but the manifest says ${layer.size}`);
  }
  const modelfile = await readOllamaModelfile(root, text);
  return {
    name,
    path: key,
    key,
    format: "gguf",
    store: "ollama",
    sha256: layer.sha256,
    ...latest,
    ...(modelfile ? { modelfile } : {}),
  };
}

/** Every model of the Ollama store at `root` (its `models` directory). */
export async function scanOllama(root: string): Promise<Scan> {
  const scan = await openStoreScan(root);
  if (scan.root === null) return scan;
  // A blob that appears (a pull finishing) changes this directory, so a "missing blob" verdict is revisited.
  scan.directories.set(join(root, "blobs"), await mtimeNs(join(root, "blobs")));
  const manifests: Array<{ path: string; segments: string[] }> = [];
  await manifestFiles(join(root, "manifests"), [], scan, manifests);
  for (const { path, segments } of manifests) scan.models.push(await modelOf(root, path, ollamaName(segments), scan));
  scan.models.sort((a, b) => a.name.localeCompare(b.name));
  return scan;
}

/**
 * What `inferno models` does (its command tree is in ../commands/models.ts): what is in the models directories and
 * stores (`list`, `info`), whether it is sound (`validate`), and a demo model to start with (`demo`). Everything here
 * reads headers only; no model is loaded.
 */
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { type InfernoConfig, STORE_NAMES } from "../../config/index.js";
import { messageOf } from "../../errors/index.js";
import { createDemoModel, DEMO_MODEL_NAME, ModelManager, type ValidationResult } from "../../models/index.js";
import type { ModelDescriptor, ModelMetadata } from "../../models/types.js";
import type { CliContext } from "../context.js";
import { configFlagValues } from "../flag-values.js";
import { COMMAND_FLAGS } from "../flags.js";
import { formatTable } from "../io.js";
import { formatBytes } from "../../units.js";
import { formatCount } from "../units.js";

const FLAGS = COMMAND_FLAGS.models;

/**
 * The manager for the configured models directories and stores, honouring `allow_outside_models_dir`; with
 * `allStores`, every store is searched whether `model_stores` enables it or not (`models list --stores`).
 */
export function managerFor(config: InfernoConfig, ctx: CliContext, allStores = false): ModelManager {
  return ModelManager.fromConfig(config, ctx.environment(), allStores ? [...STORE_NAMES] : undefined);
}

async function managerFromFlags(ctx: CliContext, options: Record<string, unknown>): Promise<ModelManager> {
  return managerFor(await ctx.loadConfig(configFlagValues(options, FLAGS)), ctx);
}

/** One row of `models list`, also its JSON form. */
interface ListedModel {
  name: string;
  /** The store it was found in, or null for a models directory. */
  store: string | null;
  format: string;
  size_bytes: number;
  architecture: string | null;
  quantization: string | null;
  parameters: number | null;
  context_length: number | null;
  valid: boolean;
  error?: string;
}

function listed(model: ModelDescriptor, metadata: ModelMetadata | undefined, error?: unknown): ListedModel {
  const gguf = metadata?.format === "gguf" ? metadata : undefined;
  return {
    name: model.name,
    store: model.store ?? null,
    format: model.format,
    size_bytes: model.fingerprint.size,
    architecture: gguf?.architecture ?? (metadata?.format === "onnx" ? `opset ${metadata.opset}` : null),
    quantization: gguf?.quantization ?? null,
    parameters: gguf?.parameterCount ?? null,
    context_length: gguf?.contextLength ?? null,
    valid: error === undefined,
    ...(error === undefined ? {} : { error: messageOf(error) }),
  };
}

export async function listCommand(
  ctx: CliContext,
  options: { stores?: boolean } & Record<string, unknown>,
): Promise<void> {
  const config = await ctx.loadConfig(configFlagValues(options, FLAGS));
  const manager = managerFor(config, ctx, options.stores === true);
  const rows: ListedModel[] = [];
  for (const model of await manager.list()) {
    try {
      rows.push(listed(model, await manager.metadata(model)));
    } catch (error) {
      rows.push(listed(model, undefined, error));
    }
  }
  if (ctx.out.json) return ctx.out.printJson(rows);
  if (options.stores === true) await reportStores(ctx, manager, config, rows);
  if (rows.length === 0) {
    ctx.out.info(`no models in ${manager.modelsDirs.join(", ")} (try \`${ctx.command("models demo")}\`)`);
    return;
  }
  const dash = (v: string | number | null, f: (x: never) => string = String) => (v === null ? "-" : f(v as never));
  const withStore = rows.some((r) => r.store !== null);
  ctx.out.print(
    formatTable(
      [
        "NAME",
        ...(withStore ? ["STORE"] : []),
        "FORMAT",
        "SIZE",
        "ARCHITECTURE",
        "QUANTIZATION",
        "PARAMETERS",
        "CONTEXT",
      ],
      rows.map((r) => [
        r.name,
        ...(withStore ? [r.store ?? "-"] : []),
        r.format,
        formatBytes(r.size_bytes),
        r.valid ? dash(r.architecture) : "invalid (see `models validate`)",
        dash(r.quantization),
        dash(r.parameters, formatCount),
        dash(r.context_length),
      ]),
    ),
  );
}

/** `list --stores`: where each store was looked for, what it holds, and whether `model_stores` enables it (stderr). */
async function reportStores(ctx: CliContext, manager: ModelManager, config: InfernoConfig, rows: ListedModel[]) {
  for (const store of STORE_NAMES) {
    const places: string[] = [];
    for (const { root } of manager.stores.filter((s) => s.store === store)) {
      const exists = await stat(root).then(
        (s) => s.isDirectory(),
        () => false,
      );
      places.push(exists ? root : `${root}, which does not exist`);
    }
    const count = rows.filter((r) => r.store === store).length;
    const enabled = config.model_stores.includes(store) ? "enabled" : `not enabled: add "${store}" to model_stores`;
    ctx.out.info(`${store}: ${count} model(s) in ${places.join("; ")} (${enabled})`);
  }
}

export async function infoCommand(ctx: CliContext, name: string, options: Record<string, unknown>): Promise<void> {
  const config = await ctx.loadConfig(configFlagValues(options, FLAGS));
  const manager = managerFor(config, ctx);
  const info = await manager.info(name);
  const estimate = await manager.estimateMemory(info, config.backend);
  if (ctx.out.json) return ctx.out.printJson({ ...info, estimated_memory_bytes: estimate });
  const lines: Array<[string, string]> = [
    ["name", info.name],
    ...(info.store ? ([["store", info.store]] as Array<[string, string]>) : []),
    ["path", info.path],
    ["format", info.format],
    ["size", `${formatBytes(info.fingerprint.size)} (${info.fingerprint.size} bytes)`],
    ["modified", new Date(info.fingerprint.mtimeMs).toISOString()],
  ];
  const m = info.metadata;
  if (m.format === "gguf") {
    lines.push(
      ["gguf version", String(m.version)],
      ["architecture", m.architecture],
      ...(m.modelName ? ([["model name", m.modelName]] as Array<[string, string]>) : []),
      ["parameters", `${formatCount(m.parameterCount)} (${m.parameterCount})`],
      ["quantization", m.quantization],
      ["context length", String(m.contextLength)],
      ["embedding length", String(m.embeddingLength)],
      ["layers", String(m.blockCount)],
      ["attention heads", `${m.headCount} (kv ${m.headCountKv})`],
      ["vocabulary", String(m.vocabularySize)],
      ["tensors", `${m.tensorCount} (${formatBytes(m.tensorBytes)})`],
      ["chat template", m.hasChatTemplate ? "yes" : "no"],
    );
  } else {
    const tensor = (t: (typeof m.inputs)[number]) =>
      `${t.name}: ${t.type} [${t.shape.map((d) => d ?? "?").join(", ")}]`;
    lines.push(
      ["ir version", String(m.irVersion)],
      ["opset", String(m.opset)],
      ...(m.producer ? ([["producer", m.producer]] as Array<[string, string]>) : []),
      ...m.inputs.map((t): [string, string] => ["input", tensor(t)]),
      ...m.outputs.map((t): [string, string] => ["output", tensor(t)]),
    );
  }
  lines.push([`memory estimate`, `${formatBytes(estimate)} (context_size ${config.backend.context_size})`]);
  const width = Math.max(...lines.map(([k]) => k.length));
  ctx.out.print(lines.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n"));
}

function validationJson(result: ValidationResult) {
  return {
    name: result.model.name,
    path: result.model.path,
    format: result.model.format,
    valid: result.ok,
    size_bytes: result.model.fingerprint.size,
    ...(result.model.fingerprint.sha256 ? { sha256: result.model.fingerprint.sha256 } : {}),
    ...(result.ok
      ? {}
      : { error: { code: result.error.code, message: result.error.message, ...result.error.details } }),
  };
}

export async function validateCommand(
  ctx: CliContext,
  name: string | undefined,
  options: { hash?: boolean } & Record<string, unknown>,
) {
  const manager = await managerFromFlags(ctx, options);
  const results = await manager.validate(name, { hash: options.hash === true });
  const invalid = results.filter((r) => !r.ok).length;
  if (invalid > 0) ctx.exitCode = 1;
  if (ctx.out.json) return ctx.out.printJson(results.map(validationJson));
  if (results.length === 0) {
    ctx.out.info(`no models in ${manager.modelsDir}`);
    return;
  }
  for (const r of results) {
    const hash = r.model.fingerprint.sha256 ? `  sha256 ${r.model.fingerprint.sha256}` : "";
    ctx.out.print(
      r.ok
        ? `ok       ${r.model.name}${hash}`
        : `INVALID  ${r.model.name}: ${r.error.details?.problem ?? r.error.message}`,
    );
  }
  ctx.out.info(`${results.length - invalid} valid, ${invalid} invalid`);
}

export async function demoCommand(ctx: CliContext, dir: string | undefined, options: Record<string, unknown>) {
  const config = await ctx.loadConfig(configFlagValues(options, FLAGS));
  const target = dir === undefined ? config.models_dir : resolve(ctx.io.cwd, dir);
  const demo = await createDemoModel(target);
  if (ctx.out.json) return ctx.out.printJson({ ...demo, models_dir: target });
  ctx.out.print(
    `${demo.created ? "wrote" : "kept"} ${demo.path} (${formatBytes(demo.size)}, random weights: it babbles)`,
  );
  // A directory given for this command only (argument or --models-dir) must be in the hint too, or `run` looks elsewhere.
  const given = dir !== undefined || options.modelsDir !== undefined;
  const dirFlag = given ? ` --models-dir ${JSON.stringify(target)}` : "";
  ctx.out.info(`try: ${ctx.command(`run${dirFlag} ${DEMO_MODEL_NAME} "Once upon a time"`)}`);
}

/**
 * Reading the schema as a table of keys: what `config get/set`, the environment parser, the flag table and the generated
 * configuration reference all use, so none of them can drift from the schema.
 */
import type { z } from "zod";
import { configSchema } from "./schema.js";

type AnySchema = z.ZodType;

/** The value kinds a key can hold, for parsing strings (environment variables, `config set`) into values. */
export type ValueKind = "boolean" | "integer" | "number" | "string" | "enum" | "string-list" | "gpu";

export interface KeyInfo {
  /** Path segments, e.g. `["cache", "max_cached_models"]`. */
  path: string[];
  /** Dotted display form, e.g. `cache.max_cached_models`. */
  key: string;
  kind: ValueKind;
  /** The value when no source sets it (undefined when the key has no default). */
  defaultValue: unknown;
  description: string;
  /** Allowed values of an enum key. */
  choices?: string[];
  /** The schema that validates a value of this key. */
  schema: AnySchema;
}

interface Def {
  type: string;
  innerType?: AnySchema;
  defaultValue?: unknown;
  shape?: Record<string, AnySchema>;
  valueType?: AnySchema;
  element?: AnySchema;
  entries?: Record<string, string>;
  options?: AnySchema[];
  checks?: Array<{ _zod?: { def?: { check?: string; format?: string } } }>;
}

function defOf(schema: AnySchema): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def;
}

/** The schema under `default`, `prefault` and `optional` wrappers. */
export function unwrap(schema: AnySchema): AnySchema {
  let current = schema;
  for (;;) {
    const def = defOf(current);
    if ((def.type === "default" || def.type === "prefault" || def.type === "optional") && def.innerType) {
      current = def.innerType;
    } else {
      return current;
    }
  }
}

function defaultOf(schema: AnySchema): unknown {
  let current = schema;
  for (;;) {
    const def = defOf(current);
    if (def.type === "default") return structuredClone(def.defaultValue);
    if ((def.type === "prefault" || def.type === "optional") && def.innerType) current = def.innerType;
    else return undefined;
  }
}

function kindOf(schema: AnySchema): Pick<KeyInfo, "kind" | "choices"> {
  const def = defOf(unwrap(schema));
  switch (def.type) {
    case "boolean":
      return { kind: "boolean" };
    case "number": {
      const integer = (def.checks ?? []).some((c) => c._zod?.def?.format === "safeint");
      return { kind: integer ? "integer" : "number" };
    }
    case "string":
      return { kind: "string" };
    case "enum":
      return { kind: "enum", choices: Object.values(def.entries ?? {}) };
    case "array": {
      const element = def.element ? defOf(unwrap(def.element)) : undefined;
      return element?.type === "enum"
        ? { kind: "string-list", choices: Object.values(element.entries ?? {}) }
        : { kind: "string-list" };
    }
    case "union":
      return { kind: "gpu", choices: ["auto", "false", "cuda", "vulkan", "metal"] };
    default:
      throw new Error(`unsupported schema type in config: ${def.type}`);
  }
}

/** The object shape under wrappers, or undefined for a leaf. */
export function shapeOf(schema: AnySchema): Record<string, AnySchema> | undefined {
  const def = defOf(unwrap(schema));
  return def.type === "object" ? def.shape : undefined;
}

/** The value schema of a record (`cache.models`), or undefined. */
export function recordValueOf(schema: AnySchema): AnySchema | undefined {
  const def = defOf(unwrap(schema));
  return def.type === "record" ? def.valueType : undefined;
}

function describe(schema: AnySchema): string {
  return (schema as unknown as { description?: string }).description ?? "";
}

function collect(schema: AnySchema, path: string[], out: KeyInfo[]): void {
  const shape = shapeOf(schema);
  if (shape) {
    for (const [name, child] of Object.entries(shape)) collect(child, [...path, name], out);
    return;
  }
  const recordValue = recordValueOf(schema);
  if (recordValue) {
    // A record's entries are documented once, under a `<name>` segment that stands for any entry name.
    const valueShape = shapeOf(recordValue) ?? {};
    for (const [name, child] of Object.entries(valueShape)) collect(child, [...path, "<name>", name], out);
    return;
  }
  out.push({
    path,
    key: path.join("."),
    ...kindOf(schema),
    defaultValue: defaultOf(schema),
    description: describe(schema),
    schema,
  });
}

/** Every leaf key of the schema, in schema order. Record entries appear once with a `<name>` segment. */
export function allKeys(): KeyInfo[] {
  const out: KeyInfo[] = [];
  collect(configSchema, [], out);
  return out;
}

/** The description of a section (`cache`, `backend`, …) for the generated reference. */
export function sectionDescription(name: string): string {
  const shape = shapeOf(configSchema);
  const section = shape?.[name];
  return section ? describe(unwrap(section)) || describe(section) : "";
}

/**
 * The key at `path`, following record entries (`["cache","models","a.gguf","pinned"]`), or undefined when no such key
 * exists. Record-entry keys come back with their real path.
 */
export function findKey(path: readonly string[]): KeyInfo | undefined {
  let schema: AnySchema = configSchema;
  for (let i = 0; i < path.length; i++) {
    const segment = path[i] as string;
    const shape = shapeOf(schema);
    if (shape) {
      const child = shape[segment];
      if (!child) return undefined;
      schema = child;
      continue;
    }
    const recordValue = recordValueOf(schema);
    if (recordValue) {
      schema = recordValue;
      continue;
    }
    return undefined;
  }
  if (shapeOf(schema) || recordValueOf(schema)) return undefined;
  return {
    path: [...path],
    key: formatKey(path),
    ...kindOf(schema),
    defaultValue: defaultOf(schema),
    description: describe(schema),
    schema,
  };
}

/** Sibling names at `path` (object keys), for "did you mean" suggestions; empty for records and leaves. */
export function childNames(path: readonly string[]): string[] {
  let schema: AnySchema = configSchema;
  for (const segment of path) {
    const shape = shapeOf(schema);
    if (shape?.[segment]) schema = shape[segment];
    else if (recordValueOf(schema)) schema = recordValueOf(schema) as AnySchema;
    else return [];
  }
  return Object.keys(shapeOf(schema) ?? {});
}

/** Whether `path` names a record (`cache.models`), whose children are free-form names. */
export function isRecordPath(path: readonly string[]): boolean {
  let schema: AnySchema = configSchema;
  for (const segment of path) {
    const shape = shapeOf(schema);
    if (shape?.[segment]) schema = shape[segment];
    else if (recordValueOf(schema)) schema = recordValueOf(schema) as AnySchema;
    else return false;
  }
  return recordValueOf(schema) !== undefined;
}

const BARE_SEGMENT = /^[A-Za-z0-9_-]+$/;

/** `["cache","models","a.gguf","pinned"]` → `cache.models."a.gguf".pinned` (TOML dotted-key syntax). */
export function formatKey(path: readonly string[]): string {
  return path.map((s) => (BARE_SEGMENT.test(s) ? s : JSON.stringify(s))).join(".");
}

/** Parses a dotted key with optional double-quoted segments: `cache.models."a.gguf".pinned`. */
export function parseKey(key: string): string[] {
  const segments: string[] = [];
  let i = 0;
  while (i < key.length) {
    if (key[i] === '"') {
      const end = key.indexOf('"', i + 1);
      if (end < 0) throw new SyntaxError(`unterminated quote in key ${key}`);
      segments.push(key.slice(i + 1, end));
      i = end + 1;
    } else {
      const end = key.indexOf(".", i);
      segments.push(key.slice(i, end < 0 ? key.length : end));
      i = end < 0 ? key.length : end + 1;
      continue;
    }
    if (i < key.length && key[i] !== ".") throw new SyntaxError(`expected "." after quoted segment in key ${key}`);
    i++;
  }
  if (key.endsWith(".")) segments.push("");
  return segments;
}

/** Edit distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j] as number;
      row[j] = Math.min(current + 1, (row[j - 1] as number) + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length] as number;
}

/** The closest candidates to `name` (containing it, then by edit distance), best first. */
export function closestMatches(name: string, candidates: readonly string[], limit = 3): string[] {
  const lower = name.toLowerCase();
  return (
    candidates
      .map((c) => ({ c, d: editDistance(lower, c.toLowerCase()), contains: c.toLowerCase().includes(lower) }))
      .filter(({ c, d, contains }) => contains || d <= Math.max(2, Math.floor(c.length / 3)))
      // A candidate that contains what was typed is a better guess than a nearer-spelled one ("ttl" → "ttl_seconds").
      .sort((x, y) => Number(y.contains) - Number(x.contains) || x.d - y.d)
      .slice(0, limit)
      .map(({ c }) => c)
  );
}

/**
 * Every key a user could mean by `path`: the fixed keys, and the per-entry keys of a record (`cache.models.<name>.…`)
 * spelled with the entry name `path` uses, so `cache.models."a.gguf".pined` can suggest `cache.models."a.gguf".pinned`.
 */
function keysSpelledLike(path: readonly string[]): string[] {
  const out: string[] = [];
  for (const info of allKeys()) {
    const at = info.path.indexOf("<name>");
    const name = at < 0 ? undefined : path[at];
    if (at < 0) out.push(info.key);
    else if (name !== undefined) out.push(formatKey(info.path.map((s, i) => (i === at ? name : s))));
  }
  return out;
}

/** The closest real keys to an unknown dotted key, best first, for "did you mean" messages. */
export function suggestKeys(path: readonly string[], limit = 3): string[] {
  return closestMatches(formatKey(path), keysSpelledLike(path), limit);
}

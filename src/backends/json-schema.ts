/**
 * The JSON Schema subset Inferno turns into a grammar (for `response_format`, Ollama's `format` and tool parameters),
 * and its translation into node-llama-cpp's grammar schema. One home for the rule: the server calls `grammarSchema`
 * while validating a request (so a schema that cannot compile is a 400 before any model loads), and the llama backend
 * calls it again to build the grammar. Pure: no llama.cpp here, only plain data.
 *
 * Supported keywords (documented in docs/api.md, "Structured output"):
 * - `type` (`object`, `array`, `string`, `number`, `integer`, `boolean`, `null`, or a list of them), `enum`, `const`
 *   (of strings, numbers, booleans or null), `anyOf` / `oneOf` (the output follows one branch), `allOf` with one entry;
 * - objects: `properties`, `required`, `additionalProperties` (boolean or schema), `minProperties`, `maxProperties`.
 *   Every listed property is generated (which satisfies `required` whatever it lists);
 * - arrays: `items`, `prefixItems`, `minItems`, `maxItems`; strings: `minLength`, `maxLength`, `format`
 *   (`date-time`, `date` and `time` are enforced; other formats are annotations, as JSON Schema defines them);
 * - `$ref` to `#/$defs/NAME` or `#/definitions/NAME`, with `$defs` / `definitions` at the root;
 * - annotations with no effect on validity: `title`, `description`, `default`, `examples`, `$schema`, `$id`,
 *   `$comment`, `deprecated`, `readOnly`, `writeOnly`, `nullable` (false only).
 *
 * Anything else (`pattern`, `minimum`, `maximum`, `multipleOf`, `not`, `if`, `uniqueItems: true`, `patternProperties`,
 * a recursive `#` reference, …) would let the grammar produce text that does not validate, so it is refused by name.
 */
import { BadRequest } from "../errors/index.js";
import type { JsonSchema } from "./types.js";

const ANNOTATIONS = new Set([
  "title",
  "description",
  "default",
  "examples",
  "$schema",
  "$id",
  "$comment",
  "deprecated",
  "readOnly",
  "writeOnly",
]);
const PRIMITIVES = new Set(["string", "number", "integer", "boolean", "null"]);
const TYPES = new Set([...PRIMITIVES, "object", "array"]);
const ENFORCED_FORMATS = new Set(["date-time", "date", "time"]);
/** Keywords a schema of each kind may carry besides annotations and the combinators. */
const KEYWORDS: Record<string, readonly string[]> = {
  object: ["properties", "required", "additionalProperties", "minProperties", "maxProperties"],
  array: ["items", "prefixItems", "minItems", "maxItems", "uniqueItems"],
  string: ["minLength", "maxLength", "format"],
};
const COMMON = new Set([
  "type",
  "enum",
  "const",
  "anyOf",
  "oneOf",
  "allOf",
  "$ref",
  "$defs",
  "definitions",
  "nullable",
]);

type Out = Record<string, unknown>;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function refuse(path: string, message: string): never {
  throw new BadRequest(`${path}: ${message}`, { details: { param: path } });
}

function unsupportedKeyword(path: string, keyword: string): never {
  refuse(
    `${path}.${keyword}`,
    `the JSON Schema keyword "${keyword}" is not supported: Inferno constrains output with a grammar and could not guarantee it (see docs/api.md, "Structured output", for the supported subset)`,
  );
}

const isPrimitiveValue = (v: unknown) => v === null || ["string", "number", "boolean"].includes(typeof v);

class Translator {
  readonly defs: Record<string, Out> = {};

  constructor(
    private readonly root: Record<string, unknown>,
    private readonly rootPath: string,
  ) {}

  /** The root schema with every definition translated into a root `$defs`. */
  translateRoot(): Out {
    for (const key of ["$defs", "definitions"] as const) {
      const defs = this.root[key];
      if (defs === undefined) continue;
      if (!isObject(defs)) refuse(`${this.rootPath}.${key}`, "expected an object of schemas");
      for (const [name, schema] of Object.entries(defs))
        this.defs[name] = this.translate(schema, `${this.rootPath}.${key}.${name}`);
    }
    const out = this.translate(this.root, this.rootPath);
    return Object.keys(this.defs).length > 0 ? { ...out, $defs: this.defs } : out;
  }

  translate(schema: unknown, path: string): Out {
    if (schema === true) return anyValue();
    if (!isObject(schema)) refuse(path, `expected a JSON Schema object, found ${JSON.stringify(schema)}`);
    this.checkKeywords(schema, path);
    const description = typeof schema.description === "string" ? { description: schema.description } : {};
    if (schema.$ref !== undefined) return { ...this.ref(schema.$ref, `${path}.$ref`), ...description };
    if (schema.const !== undefined) {
      if (!isPrimitiveValue(schema.const))
        refuse(`${path}.const`, "only a string, number, boolean or null constant is supported");
      return { const: schema.const, ...description };
    }
    if (schema.enum !== undefined) {
      if (!Array.isArray(schema.enum) || schema.enum.length === 0)
        refuse(`${path}.enum`, "expected a non-empty list of values");
      if (!schema.enum.every(isPrimitiveValue))
        refuse(`${path}.enum`, "only strings, numbers, booleans and null are supported as enum values");
      return { enum: schema.enum, ...description };
    }
    for (const combinator of ["anyOf", "oneOf"] as const) {
      const branches = schema[combinator];
      if (branches === undefined) continue;
      if (!Array.isArray(branches) || branches.length === 0)
        refuse(`${path}.${combinator}`, "expected a non-empty list of schemas");
      if (schema.type !== undefined) unsupportedKeyword(path, "type"); // together with a combinator: an intersection
      return { oneOf: branches.map((b, i) => this.translate(b, `${path}.${combinator}[${i}]`)), ...description };
    }
    if (schema.allOf !== undefined) {
      if (!Array.isArray(schema.allOf) || schema.allOf.length !== 1) unsupportedKeyword(path, "allOf");
      return { ...this.translate(schema.allOf[0], `${path}.allOf[0]`), ...description };
    }
    return { ...this.typed(schema, path), ...description };
  }

  private checkKeywords(schema: Record<string, unknown>, path: string): void {
    const allowed = new Set([...COMMON, ...Object.values(KEYWORDS).flat()]);
    for (const keyword of Object.keys(schema)) {
      if (ANNOTATIONS.has(keyword)) continue;
      if (!allowed.has(keyword)) unsupportedKeyword(path, keyword);
    }
    if (schema.nullable !== undefined && schema.nullable !== false) unsupportedKeyword(path, "nullable");
    if (schema.uniqueItems !== undefined && schema.uniqueItems !== false) unsupportedKeyword(path, "uniqueItems");
    if (path !== this.rootPath && (schema.$defs !== undefined || schema.definitions !== undefined)) {
      unsupportedKeyword(path, schema.$defs !== undefined ? "$defs" : "definitions");
    }
  }

  private ref(ref: unknown, path: string): Out {
    const match = typeof ref === "string" ? /^#\/(\$defs|definitions)\/([^/]+)$/.exec(ref) : null;
    if (!match)
      refuse(
        path,
        `only references to "#/$defs/NAME" or "#/definitions/NAME" are supported, found ${JSON.stringify(ref)}`,
      );
    const name = match[2] as string;
    const defs = this.root[match[1] as string];
    if (!isObject(defs) || !(name in defs))
      refuse(path, `refers to the definition "${name}", which the schema does not define`);
    return { $ref: `#/$defs/${name}` };
  }

  /** A schema by `type` (absent: inferred from the keywords present, else any value). */
  private typed(schema: Record<string, unknown>, path: string): Out {
    let type = schema.type;
    if (type === undefined) {
      const kind = Object.entries(KEYWORDS).find(([, keywords]) => keywords.some((k) => schema[k] !== undefined));
      if (!kind) return anyValue();
      type = kind[0];
    }
    const types = Array.isArray(type) ? type : [type];
    if (types.length === 0 || !types.every((t) => typeof t === "string" && TYPES.has(t))) {
      refuse(
        `${path}.type`,
        `expected one of ${[...TYPES].join(", ")} (or a list of them), found ${JSON.stringify(type)}`,
      );
    }
    for (const [kind, keywords] of Object.entries(KEYWORDS)) {
      const present = keywords.find((k) => schema[k] !== undefined && !(k === "uniqueItems" && schema[k] === false));
      if (present && !types.includes(kind))
        refuse(`${path}.${present}`, `applies to type "${kind}", but the type is ${JSON.stringify(type)}`);
    }
    if (types.length > 1) {
      if (
        types.every((t) => PRIMITIVES.has(t as string)) &&
        schema.format === undefined &&
        schema.minLength === undefined &&
        schema.maxLength === undefined
      ) {
        return { type: types };
      }
      return { oneOf: types.map((t) => this.typed({ ...schema, type: t }, path)) };
    }
    const only = types[0] as string;
    if (only === "object") return this.object(schema, path);
    if (only === "array") return this.array(schema, path);
    if (only === "string") return this.string(schema, path);
    return { type: only };
  }

  private object(schema: Record<string, unknown>, path: string): Out {
    const out: Out = { type: "object" };
    if (schema.properties !== undefined) {
      if (!isObject(schema.properties)) refuse(`${path}.properties`, "expected an object of schemas");
      out.properties = Object.fromEntries(
        Object.entries(schema.properties).map(([name, s]) => [name, this.translate(s, `${path}.properties.${name}`)]),
      );
    }
    if (
      schema.required !== undefined &&
      !(Array.isArray(schema.required) && schema.required.every((r) => typeof r === "string"))
    ) {
      refuse(`${path}.required`, "expected a list of property names");
    }
    const extra = schema.additionalProperties;
    if (isObject(extra)) out.additionalProperties = this.translate(extra, `${path}.additionalProperties`);
    else if (typeof extra === "boolean") out.additionalProperties = extra;
    else if (extra !== undefined) refuse(`${path}.additionalProperties`, "expected a boolean or a schema");
    // JSON Schema allows any other property by default; with listed properties the grammar writes just those (valid),
    // and without any it may write any object.
    else out.additionalProperties = schema.properties === undefined;
    for (const key of ["minProperties", "maxProperties"] as const) {
      if (schema[key] !== undefined) out[key] = this.count(schema[key], `${path}.${key}`);
    }
    return out;
  }

  private array(schema: Record<string, unknown>, path: string): Out {
    const out: Out = { type: "array" };
    if (schema.items === false) {
      if (schema.prefixItems === undefined) refuse(`${path}.items`, "false is only supported with prefixItems");
      out.maxItems = Array.isArray(schema.prefixItems) ? schema.prefixItems.length : 0;
    } else if (schema.items !== undefined) {
      if (Array.isArray(schema.items)) unsupportedKeyword(path, "items"); // the draft-4 tuple form: use prefixItems
      out.items = this.translate(schema.items, `${path}.items`);
    }
    if (schema.prefixItems !== undefined) {
      if (!Array.isArray(schema.prefixItems)) refuse(`${path}.prefixItems`, "expected a list of schemas");
      out.prefixItems = schema.prefixItems.map((s, i) => this.translate(s, `${path}.prefixItems[${i}]`));
    }
    for (const key of ["minItems", "maxItems"] as const) {
      if (schema[key] !== undefined) out[key] = this.count(schema[key], `${path}.${key}`);
    }
    return out;
  }

  private string(schema: Record<string, unknown>, path: string): Out {
    if (typeof schema.format === "string" && ENFORCED_FORMATS.has(schema.format)) {
      if (schema.minLength !== undefined || schema.maxLength !== undefined) {
        unsupportedKeyword(path, schema.minLength !== undefined ? "minLength" : "maxLength"); // with an enforced format
      }
      return { type: "string", format: schema.format };
    }
    if (schema.format !== undefined && typeof schema.format !== "string") refuse(`${path}.format`, "expected a string");
    const out: Out = { type: "string" };
    for (const key of ["minLength", "maxLength"] as const) {
      if (schema[key] !== undefined) out[key] = this.count(schema[key], `${path}.${key}`);
    }
    return out;
  }

  private count(value: unknown, path: string): number {
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0)
      refuse(path, `expected a non-negative integer, found ${JSON.stringify(value)}`);
    return value;
  }
}

/** Any JSON value (a schema of `{}` or `true`). */
function anyValue(): Out {
  return {
    oneOf: [
      { type: ["string", "number", "boolean", "null"] },
      { type: "object", additionalProperties: true },
      { type: "array" },
    ],
  };
}

/**
 * Translates a JSON Schema into node-llama-cpp's grammar schema (`GbnfJsonSchema`), or throws `BadRequest` naming the
 * offending keyword by its path below `path` (e.g. `response_format.json_schema.schema.properties.age.minimum`).
 */
export function grammarSchema(schema: unknown, path: string): JsonSchema {
  if (schema === true) return anyValue();
  if (!isObject(schema)) refuse(path, `expected a JSON Schema object, found ${JSON.stringify(schema)}`);
  return new Translator(schema, path).translateRoot();
}

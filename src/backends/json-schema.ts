/**
 * JSON Schema for constrained output (`response_format`, Ollama's `format`, tool parameters): the subset Inferno
 * enforces, its grammar (GBNF, the text llama.cpp samples under) and the validator every answer passes before it is
 * sent. One home for the rule: the server calls `checkSchema` while validating a request (a schema that cannot compile
 * is a 400 before any model loads), and the llama backend builds the grammar and the validator from the same schema.
 * Pure: no llama.cpp here, only text and plain data.
 *
 * The coverage is at least llama.cpp's schema-to-grammar conversion:
 * - `type` (one or a list), `enum` and `const` (any JSON value), `anyOf` / `oneOf` (one branch is written), `allOf`
 *   (merged), `$ref` to any JSON pointer in the schema (`#/$defs/…`, `#/definitions/…`, `#` — recursion is fine),
 *   `nullable: true` (OpenAPI);
 * - integers and numbers: `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum` (a number's range must hold an
 *   integer: its answers are written from one);
 * - strings: `minLength`, `maxLength` (such strings are written in ASCII, other characters as JSON escapes), `pattern`
 *   (regular expressions without look-around or back-references; the answer matches the whole pattern), `format`
 *   `date`, `time`, `date-time`, `uuid`, `email`, `uri`, `hostname`, `ipv4` (written in a strict, bounded form: RFC
 *   4122 UUIDs, UTC times, http(s) URLs, at most three dotted parts a side of an email; beside a pattern, as zod writes
 *   them, the format is written and the answer checked against both; formats JSON Schema does not define, and formats
 *   on numbers, are annotations);
 * - arrays: `items`, `prefixItems` (or the older `items: [...]`), `minItems`, `maxItems`;
 * - objects: `properties` (every property is written, in order, up to `maxProperties`), `required`,
 *   `additionalProperties`, `minProperties`, `maxProperties`, `propertyNames` (a schema of strings);
 * - annotations: `title`, `description`, `default`, `examples`, `$schema`, `$id`, `$comment`, `deprecated`,
 *   `readOnly`, `writeOnly`, `$defs`, `definitions`.
 *
 * Anything else (`multipleOf`, `not`, `if`, `uniqueItems: true`, `patternProperties`, `format: "ipv6"`, a pattern with
 * look-around, a number range holding no integer, …) could let the grammar write an answer that does not validate, so
 * it is a 400 naming the keyword by its path.
 *
 * Grammars write compact JSON (no whitespace between tokens): an answer costs only the tokens its values need.
 */
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import { BadRequest } from "../errors/index.js";
import type { JsonSchema } from "./types.js";

type Schema = Record<string, unknown>;

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
  "$defs",
  "definitions",
]);
const KEYWORDS: Record<string, readonly string[]> = {
  object: ["properties", "required", "additionalProperties", "minProperties", "maxProperties", "propertyNames"],
  array: ["items", "prefixItems", "minItems", "maxItems", "uniqueItems"],
  string: ["minLength", "maxLength", "pattern", "format"],
  number: ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"],
};
const COMMON = ["type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "nullable"];
const ALLOWED = new Set([...ANNOTATIONS, ...COMMON, ...Object.values(KEYWORDS).flat()]);
const TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"];

/** Formats the grammar writes and the validator checks. */
export const ENFORCED_FORMATS = ["date", "time", "date-time", "uuid", "email", "uri", "hostname", "ipv4"] as const;
/** Formats JSON Schema defines that Inferno cannot write: refused unless a `pattern` says what to write. */
const STANDARD_FORMATS = new Set([
  "duration",
  "idn-email",
  "idn-hostname",
  "ipv6",
  "uri-reference",
  "iri",
  "iri-reference",
  "uri-template",
  "json-pointer",
  "relative-json-pointer",
  "regex",
]);

/** Numbers beyond this many digits are not written: every answer stays exact in a JavaScript number. */
const MAX_DIGITS = 15;
const MAX_EXACT = 10 ** MAX_DIGITS - 1;

function isObject(value: unknown): value is Schema {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function refuse(path: string, message: string): never {
  throw new BadRequest(`${path}: ${message}`, { details: { param: path } });
}

function unsupported(
  path: string,
  keyword: string,
  why = "Inferno constrains output with a grammar and could not guarantee it",
): never {
  refuse(
    `${path}.${keyword}`,
    `the JSON Schema keyword "${keyword}" is not supported: ${why} (see docs/api.md, "Structured output", for the supported subset)`,
  );
}

function count(value: unknown, path: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0)
    refuse(path, `expected a non-negative integer, found ${JSON.stringify(value)}`);
  return value;
}

// ---------------------------------------------------------------------------------------------------------------------
// GBNF text

/** A GBNF string literal. */
function literal(text: string): string {
  let out = '"';
  for (const ch of text) {
    const code = ch.codePointAt(0) as number;
    if (ch === '"' || ch === "\\") out += `\\${ch}`;
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return `${out}"`;
}

/**
 * A JSON value's text with every non-ASCII character as a `\\u` escape. llama.cpp's grammar matches byte tokens
 * against code points leniently: a lead byte followed by a byte that is no continuation can pass for a character the
 * grammar allows, and then decodes as U+FFFD and that byte. Written in ASCII, literals, keys and bounded strings hold
 * exactly what the grammar allowed.
 */
function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** A code point inside a GBNF character class. */
function classChar(code: number): string {
  if (/[A-Za-z0-9]/.test(String.fromCodePoint(code))) return String.fromCodePoint(code);
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, "0")}`
    : code <= 0xffff
      ? `\\u${code.toString(16).padStart(4, "0")}`
      : `\\U${code.toString(16).padStart(8, "0")}`;
}

type Range = [number, number];
const MAX_CODE = 0x10ffff;
/** What a JSON string cannot hold unescaped. Pattern characters are written raw, so they leave these out. */
const NOT_IN_JSON_STRING: Range[] = [
  [0, 0x1f],
  [0x22, 0x22],
  [0x5c, 0x5c],
  [0x7f, 0x7f],
];

function normalise(ranges: Range[]): Range[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: Range[] = [];
  for (const [lo, hi] of sorted) {
    const last = out.at(-1);
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  return out;
}

function complement(ranges: Range[]): Range[] {
  const out: Range[] = [];
  let next = 0;
  for (const [lo, hi] of normalise(ranges)) {
    if (lo > next) out.push([next, lo - 1]);
    next = hi + 1;
  }
  if (next <= MAX_CODE) out.push([next, MAX_CODE]);
  return out;
}

function subtract(ranges: Range[], removed: Range[]): Range[] {
  const keep = complement(removed);
  const out: Range[] = [];
  for (const [lo, hi] of normalise(ranges)) {
    for (const [klo, khi] of keep) {
      const a = Math.max(lo, klo);
      const b = Math.min(hi, khi);
      if (a <= b) out.push([a, b]);
    }
  }
  return out;
}

function charClass(ranges: Range[]): string {
  return `[${normalise(ranges)
    .map(([lo, hi]) => (lo === hi ? classChar(lo) : `${classChar(lo)}-${classChar(hi)}`))
    .join("")}]`;
}

/** `x{min,max}` (max undefined: unbounded) in GBNF. */
function repeat(item: string, min: number, max: number | undefined): string {
  if (max !== undefined && max === 0) return '""';
  if (min === 0 && max === undefined) return `${item}*`;
  if (min === 1 && max === undefined) return `${item}+`;
  if (min === 0 && max === 1) return `${item}?`;
  if (min === 1 && max === 1) return item;
  if (max === undefined) return `${item}{${min},}`;
  return min === max ? `${item}{${min}}` : `${item}{${min},${max}}`;
}

const alt = (branches: string[]) => (branches.length === 1 ? (branches[0] as string) : `(${branches.join(" | ")})`);

// ---------------------------------------------------------------------------------------------------------------------
// Integer ranges as digit patterns (the classic range-to-regex split), without leading zeros.

function digitsOf(n: number): number {
  return String(n).length;
}

/** Non-negative integers in [min, max] (max ≤ MAX_EXACT), each alternative a sequence of digit classes. */
function naturalRange(min: number, max: number): string[] {
  const stops = new Set<number>([max]);
  for (let nines = 1; ; nines++) {
    const stop = Number(String(min).slice(0, -nines) + "9".repeat(nines));
    if (!(min <= stop && stop <= max)) break;
    stops.add(stop);
  }
  for (let zeros = 1; ; zeros++) {
    const stop = max + 1 - ((max + 1) % 10 ** zeros) - 1;
    if (!(min < stop && stop <= max)) break;
    stops.add(stop);
  }
  const out: string[] = [];
  let start = min;
  for (const stop of [...stops].sort((a, b) => a - b)) {
    const a = String(start);
    const b = String(stop);
    const parts: string[] = [];
    for (let i = 0; i < a.length; i++) {
      parts.push(a[i] === b[i] ? `"${a[i]}"` : `[${a[i]}-${b[i]}]`);
    }
    out.push(parts.join(" "));
    start = stop + 1;
  }
  return out;
}

/** Non-negative integers from `min` up, up to MAX_DIGITS digits. */
function naturalFrom(min: number): string[] {
  const digits = digitsOf(min);
  const out = naturalRange(min, 10 ** digits - 1);
  if (digits < MAX_DIGITS) out.push(`[1-9] [0-9]{${digits},${MAX_DIGITS - 1}}`);
  return out;
}

/** Integers in [min, max] (either may be infinite); null when none is. */
function integerRange(min: number, max: number): string | null {
  if (min > max) return null;
  const branches: string[] = [];
  if (min < 0) {
    // Negative integers -m, m in [max(1, -max), -min].
    const low = Math.max(1, max < 0 ? -max : 1);
    const high = -min;
    const magnitudes = high === Infinity ? naturalFrom(low) : naturalRange(low, high);
    branches.push(`"-" ${alt(magnitudes)}`);
  }
  if (max >= 0) {
    const low = Math.max(0, min);
    branches.push(...(max === Infinity ? naturalFrom(low) : naturalRange(low, max)));
  }
  return alt(branches);
}

// ---------------------------------------------------------------------------------------------------------------------
// Regular expressions (JSON Schema `pattern`) as GBNF

class PatternParser {
  private i = 0;

  constructor(
    private readonly source: string,
    private readonly path: string,
  ) {}

  parse(): string {
    const out = this.alternation(true);
    if (this.i < this.source.length) this.fail(`unexpected "${this.source[this.i]}"`);
    return out;
  }

  private fail(why: string): never {
    refuse(
      this.path,
      `the pattern ${JSON.stringify(this.source)} cannot be written by a grammar: ${why} (supported: literals, classes, ".", groups, "|", quantifiers, \\d \\w \\s; no look-around or back-references)`,
    );
  }

  private peek(): string | undefined {
    return this.source[this.i];
  }

  private alternation(top: boolean): string {
    const branches = [this.sequence(top)];
    while (this.peek() === "|") {
      this.i++;
      branches.push(this.sequence(top));
    }
    return alt(branches);
  }

  private sequence(top: boolean): string {
    const items: string[] = [];
    if (top && this.peek() === "^") this.i++;
    while (this.i < this.source.length) {
      const ch = this.peek();
      if (ch === "|" || ch === ")") break;
      if (ch === "$") {
        this.i++;
        const next = this.peek();
        if (top && (next === undefined || next === "|")) break;
        this.fail('"$" only at the end');
      }
      if (ch === "^") this.fail('"^" only at the start');
      const atom = this.atom();
      items.push(this.quantified(atom));
    }
    return items.length === 0 ? '""' : items.length === 1 ? (items[0] as string) : `(${items.join(" ")})`;
  }

  private quantified(atom: string): string {
    const ch = this.peek();
    let result = atom;
    if (ch === "*" || ch === "+" || ch === "?") {
      this.i++;
      result = repeat(atom, ch === "+" ? 1 : 0, ch === "?" ? 1 : undefined);
    } else if (ch === "{") {
      const match = /^\{(\d+)(,(\d*))?\}/.exec(this.source.slice(this.i));
      if (!match) return this.literalChar(); // a "{" that is no quantifier is a literal
      this.i += match[0].length;
      const min = Number(match[1]);
      const max = match[2] === undefined ? min : match[3] === "" ? undefined : Number(match[3]);
      result = repeat(atom, min, max);
    } else {
      return result;
    }
    if (this.peek() === "?") this.i++; // lazy: the same language
    if (
      ["*", "+", "?", "{"].includes(this.peek() ?? "") &&
      !(this.peek() === "{" && !/^\{\d/.test(this.source.slice(this.i)))
    )
      this.fail("a quantifier of a quantifier");
    return result;
  }

  private literalChar(): string {
    const ch = this.source[this.i++] as string;
    return this.charRanges([[ch.codePointAt(0) as number, ch.codePointAt(0) as number]]);
  }

  /**
   * A set of characters, written raw: printable ASCII less what a JSON string must escape (other characters could be
   * mismatched byte by byte, see asciiJson). One character outside it is written as its JSON escape; refused when
   * nothing is left.
   */
  private charRanges(ranges: Range[]): string {
    const allowed = subtract(ranges, [...NOT_IN_JSON_STRING, [0x7f, MAX_CODE]]);
    if (allowed.length > 0) return charClass(allowed);
    const [only] = normalise(ranges);
    if (normalise(ranges).length === 1 && only && only[0] === only[1] && only[0] > 0x7f)
      return literal(asciiJson(String.fromCodePoint(only[0])).slice(1, -1));
    this.fail(
      "a character a JSON string must escape (a quote, a backslash, a control character), or a class of non-ASCII ones",
    );
  }

  private atom(): string {
    const ch = this.peek() as string;
    if (ch === "(") {
      this.i++;
      if (this.peek() === "?") {
        if (this.source.startsWith("?:", this.i)) this.i += 2;
        else this.fail("look-around and named groups");
      }
      const inner = this.alternation(false);
      if (this.peek() !== ")") this.fail("an unclosed group");
      this.i++;
      return `(${inner})`;
    }
    if (ch === "[") return this.charRanges(this.bracket());
    if (ch === ".") {
      this.i++;
      return this.charRanges(complement([[0x0a, 0x0a]]));
    }
    if (ch === "\\") {
      const ranges = this.escape(false);
      return this.charRanges(ranges);
    }
    if (ch === "*" || ch === "+" || ch === "?") this.fail(`a quantifier with nothing before it`);
    return this.literalChar();
  }

  /** The character a `\u` or `\x` escape names with its `count` hex digits (`spelled`: the count in words). */
  private hexEscape(letter: string, count: number, spelled: string): Range[] {
    const hex = new RegExp(`^[0-9a-fA-F]{${count}}`).exec(this.source.slice(this.i));
    if (!hex) this.fail(`a \\${letter} escape without ${spelled} hex digits`);
    this.i += count;
    const code = parseInt(hex[0], 16);
    return [[code, code]];
  }

  private escape(inClass: boolean): Range[] {
    this.i++; // the backslash
    const ch = this.source[this.i++];
    if (ch === undefined) this.fail("a trailing backslash");
    const digits: Range[] = [[0x30, 0x39]];
    const word: Range[] = [
      [0x30, 0x39],
      [0x41, 0x5a],
      [0x5f, 0x5f],
      [0x61, 0x7a],
    ];
    const space: Range[] = [
      [0x09, 0x0d],
      [0x20, 0x20],
    ];
    switch (ch) {
      case "d":
        return digits;
      case "D":
        return complement(digits);
      case "w":
        return word;
      case "W":
        return complement(word);
      case "s":
        return space;
      case "S":
        return complement(space);
      case "t":
        return [[9, 9]];
      case "n":
        return [[10, 10]];
      case "r":
        return [[13, 13]];
      case "u":
        return this.hexEscape("u", 4, "four");
      case "x":
        return this.hexEscape("x", 2, "two");
      default:
        if (/[0-9]/.test(ch) || (!inClass && (ch === "b" || ch === "B"))) this.fail(`"\\${ch}"`);
        if (/[A-Za-z]/.test(ch)) this.fail(`the escape "\\${ch}"`);
        return [[ch.codePointAt(0) as number, ch.codePointAt(0) as number]];
    }
  }

  private bracket(): Range[] {
    this.i++; // [
    const negated = this.peek() === "^";
    if (negated) this.i++;
    const ranges: Range[] = [];
    let first = true;
    while (this.peek() !== "]" || first) {
      if (this.peek() === undefined) this.fail("an unclosed class");
      first = false;
      const from = this.classAtom();
      if (this.peek() === "-" && this.source[this.i + 1] !== "]" && this.source[this.i + 1] !== undefined) {
        this.i++;
        const to = this.classAtom();
        if (from.length !== 1 || to.length !== 1 || from[0]?.[0] !== from[0]?.[1] || to[0]?.[0] !== to[0]?.[1])
          this.fail("a range between classes");
        const lo = (from[0] as Range)[0];
        const hi = (to[0] as Range)[0];
        if (lo > hi) this.fail("a range out of order");
        ranges.push([lo, hi]);
      } else {
        ranges.push(...from);
      }
    }
    this.i++; // ]
    return negated ? complement(ranges) : ranges;
  }

  private classAtom(): Range[] {
    if (this.peek() === "\\") return this.escape(true);
    const code = this.source.codePointAt(this.i) as number;
    this.i += code > 0xffff ? 2 : 1;
    return [[code, code]];
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Schemas as GBNF

/** Rules every grammar may use, by name. */
const PRIMITIVE_RULES: Record<string, string> = {
  char: '[^"\\\\\\x00-\\x1f\\x7f] | "\\\\" ["\\\\/bfnrt]',
  string: '"\\"" char* "\\""',
  integer: `"-"? ("0" | [1-9] [0-9]{0,${MAX_DIGITS - 1}})`,
  number: `integer ("." [0-9]{1,${MAX_DIGITS}})? ([eE] [-+]? [0-9]{1,2})?`,
  boolean: '"true" | "false"',
  null: '"null"',
  value: "object | array | string | number | boolean | null",
  object: '"{" (string ":" value ("," string ":" value)*)? "}"',
  array: '"[" (value ("," value)*)? "]"',
  hex: "[0-9a-f]",
  "ascii-char":
    '[\\x20-\\x21\\x23-\\x5b\\x5d-\\x7e] | "\\\\" (["\\\\/bfnrt] | "u" ([0-9a-cA-CeEfF] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2}))',
  day: '"0" [1-9] | "1" [0-9] | "2" [0-8]',
  date: '[0-9]{4} "-" (("0" [13578] | "1" [02]) "-" (day | "29" | "30" | "31") | ("0" [469] | "11") "-" (day | "29" | "30") | "02-" day)',
  time: '([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,6})? "Z"',
  "date-time": 'date "T" time',
  uuid: 'hex{8} "-" hex{4} "-" [1-8] hex{3} "-" [89ab] hex{3} "-" hex{12}',
  "email-part": "[A-Za-z0-9_+-]{1,24}",
  "email-label": '[A-Za-z0-9]{1,24} ("-" [A-Za-z0-9]{1,24})?',
  email: 'email-part ("." email-part){0,2} "@" hostname',
  hostname: 'email-label ("." email-label){0,2} "." [a-z]{2,6}',
  uri: '"http" "s"? "://" hostname ("/" [A-Za-z0-9._~-]{1,24}){0,4} "/"?',
  octet: `${naturalRange(0, 255).join(" | ")}`,
  ipv4: 'octet "." octet "." octet "." octet',
};
/** Which primitive rules each one uses. */
const PRIMITIVE_USES: Record<string, string[]> = {
  string: ["char"],
  number: ["integer"],
  value: ["object", "array", "string", "number", "boolean", "null"],
  object: ["string", "value"],
  array: ["value"],
  date: ["day"],
  "date-time": ["date", "time"],
  uuid: ["hex"],
  email: ["email-part", "hostname"],
  hostname: ["email-label"],
  uri: ["hostname"],
  ipv4: ["octet"],
};

class GrammarBuilder {
  private readonly refs = new Map<string, string>();

  /** `rules` may be shared by builders of several roots (one per tool), told apart by `prefix`. */
  constructor(
    private readonly root: Schema | true,
    private readonly rules = new Map<string, string>(),
    private readonly prefix = "",
  ) {}

  grammar(rootExpression: string): string {
    return [`root ::= ${rootExpression}`, ...[...this.rules].map(([name, body]) => `${name} ::= ${body}`)].join("\n");
  }

  /** A primitive rule, added with the rules it uses. */
  use(name: string): string {
    if (!this.rules.has(name)) {
      this.rules.set(name, PRIMITIVE_RULES[name] as string);
      for (const used of PRIMITIVE_USES[name] ?? []) this.use(used);
    }
    return name;
  }

  visit(schema: unknown, path: string): string {
    if (schema === true) return this.use("value");
    if (schema === false) refuse(path, "the schema false allows no value");
    if (!isObject(schema)) refuse(path, `expected a JSON Schema object, found ${JSON.stringify(schema)}`);
    for (const keyword of Object.keys(schema)) if (!ALLOWED.has(keyword)) unsupported(path, keyword);
    if (schema.nullable !== undefined && typeof schema.nullable !== "boolean")
      refuse(`${path}.nullable`, "expected a boolean");
    if (schema.nullable === true) {
      const { nullable: _, ...rest } = schema;
      return alt([this.visit(rest, path), this.use("null")]);
    }
    if (schema.$ref !== undefined) {
      const siblings = Object.keys(schema).filter((k) => k !== "$ref" && !ANNOTATIONS.has(k));
      if (siblings.length > 0) {
        const { $ref, ...rest } = schema;
        return this.visit({ allOf: [{ $ref }, rest] }, path);
      }
      return this.ref(schema.$ref, `${path}.$ref`);
    }
    if (schema.allOf !== undefined) return this.visit(this.mergeAllOf(schema, path), path);
    if (schema.const !== undefined) return literal(asciiJson(schema.const));
    if (schema.enum !== undefined) {
      if (!Array.isArray(schema.enum) || schema.enum.length === 0)
        refuse(`${path}.enum`, "expected a non-empty list of values");
      return alt(schema.enum.map((v) => literal(asciiJson(v))));
    }
    for (const combinator of ["anyOf", "oneOf"] as const) {
      const branches = schema[combinator];
      if (branches === undefined) continue;
      if (!Array.isArray(branches) || branches.length === 0)
        refuse(`${path}.${combinator}`, "expected a non-empty list of schemas");
      const other = Object.keys(schema).find((k) => k !== combinator && !ANNOTATIONS.has(k));
      if (other !== undefined) unsupported(path, other, `beside "${combinator}" it would intersect every branch`);
      return alt(branches.map((b, i) => this.visit(b, `${path}.${combinator}[${i}]`)));
    }
    return this.typed(schema, path);
  }

  private ref(ref: unknown, path: string): string {
    if (typeof ref !== "string" || !ref.startsWith("#"))
      refuse(
        path,
        `only references inside the schema ("#/$defs/NAME", "#") are supported, found ${JSON.stringify(ref)}`,
      );
    const known = this.refs.get(ref);
    if (known) return known;
    let target: unknown = this.root;
    const pointer = ref.slice(1);
    if (pointer !== "" && !pointer.startsWith("/"))
      refuse(path, `expected a JSON pointer, found ${JSON.stringify(ref)}`);
    for (const raw of pointer === "" ? [] : pointer.slice(1).split("/")) {
      const key = decodeURIComponent(raw).replaceAll("~1", "/").replaceAll("~0", "~");
      target = isObject(target) || Array.isArray(target) ? (target as Record<string, unknown>)[key] : undefined;
      if (target === undefined) refuse(path, `refers to ${JSON.stringify(ref)}, which the schema does not define`);
    }
    const name = `${this.prefix}ref${this.refs.size}-${(pointer.split("/").at(-1) || "root").replace(/[^A-Za-z0-9]/g, "")}`;
    this.refs.set(ref, name);
    this.rules.set(name, "");
    this.rules.set(name, this.visit(target, path));
    return name;
  }

  /** `allOf` as one schema: keywords merged (properties and required joined); a clash is refused. */
  private mergeAllOf(schema: Schema, path: string): Schema {
    const entries = schema.allOf;
    if (!Array.isArray(entries) || entries.length === 0)
      refuse(`${path}.allOf`, "expected a non-empty list of schemas");
    const { allOf: _, ...merged } = schema as Schema & { allOf: unknown };
    const resolve = (entry: unknown, at: string): Schema => {
      if (entry === true) return {};
      if (!isObject(entry)) refuse(at, "expected a JSON Schema object");
      if (entry.$ref === undefined) return entry;
      const { $ref, ...rest } = entry;
      let target: unknown = this.root;
      if (typeof $ref !== "string" || !$ref.startsWith("#"))
        refuse(`${at}.$ref`, "expected a reference inside the schema");
      for (const key of $ref.slice(2).split("/").filter(Boolean)) target = isObject(target) ? target[key] : undefined;
      if (!isObject(target))
        refuse(`${at}.$ref`, `refers to ${JSON.stringify($ref)}, which the schema does not define`);
      return { ...resolve(target, at), ...rest };
    };
    entries.forEach((raw, i) => {
      const entry = resolve(raw, `${path}.allOf[${i}]`);
      for (const [key, value] of Object.entries(entry)) {
        if (ANNOTATIONS.has(key)) continue;
        if (key === "properties" && isObject(value)) {
          merged.properties = { ...(isObject(merged.properties) ? merged.properties : {}), ...value };
        } else if (key === "required" && Array.isArray(value)) {
          merged.required = [...new Set([...(Array.isArray(merged.required) ? merged.required : []), ...value])];
        } else if (key === "allOf") {
          Object.assign(merged, this.mergeAllOf({ allOf: value }, `${path}.allOf[${i}]`));
        } else if (merged[key] !== undefined && JSON.stringify(merged[key]) !== JSON.stringify(value)) {
          unsupported(`${path}.allOf[${i}]`, key, "its entries disagree on it");
        } else {
          merged[key] = value;
        }
      }
    });
    return merged;
  }

  private typed(schema: Schema, path: string): string {
    let type = schema.type;
    if (type === undefined) {
      const kinds = Object.entries(KEYWORDS).filter(([, keywords]) => keywords.some((k) => schema[k] !== undefined));
      if (kinds.length === 0) return this.use("value");
      type = kinds.map(([kind]) => kind);
    }
    const types = Array.isArray(type) ? type : [type];
    if (types.length === 0 || !types.every((t) => typeof t === "string" && TYPES.includes(t)))
      refuse(`${path}.type`, `expected one of ${TYPES.join(", ")} (or a list of them), found ${JSON.stringify(type)}`);
    for (const [kind, keywords] of Object.entries(KEYWORDS)) {
      // `format` on numbers (OpenAPI's int32, double…) is an annotation.
      const present = keywords.find((k) => schema[k] !== undefined && !(k === "format" && !types.includes("string")));
      const applies = types.includes(kind) || (kind === "number" && types.includes("integer"));
      if (present && !applies)
        refuse(`${path}.${present}`, `applies to type "${kind}", but the type is ${JSON.stringify(type)}`);
    }
    return alt(
      [...new Set(types as string[])].map((t) => {
        switch (t) {
          case "object":
            return this.object(schema, path);
          case "array":
            return this.array(schema, path);
          case "string":
            return this.string(schema, path);
          case "integer":
          case "number":
            return this.number(schema, path, t === "integer");
          default:
            return this.use(t);
        }
      }),
    );
  }

  private object(schema: Schema, path: string): string {
    if (schema.properties !== undefined && !isObject(schema.properties))
      refuse(`${path}.properties`, "expected an object of schemas");
    const required = schema.required ?? [];
    if (!Array.isArray(required) || !required.every((r) => typeof r === "string"))
      refuse(`${path}.required`, "expected a list of property names");
    const properties = { ...((schema.properties ?? {}) as Schema) };
    const min = schema.minProperties === undefined ? 0 : count(schema.minProperties, `${path}.minProperties`);
    const max = schema.maxProperties === undefined ? undefined : count(schema.maxProperties, `${path}.maxProperties`);
    const extra = schema.additionalProperties;
    if (extra !== undefined && typeof extra !== "boolean" && !isObject(extra))
      refuse(`${path}.additionalProperties`, "expected a boolean or a schema");
    const missing = required.find((r) => !(r in properties));
    const listed = [...Object.keys(properties), ...required];
    if (listed.length === 0) {
      // A map: any keys, values by additionalProperties.
      if (extra === false) {
        if (min > 0) refuse(`${path}.minProperties`, "no property may be written (additionalProperties is false)");
        return '"{}"';
      }
      const value =
        extra === undefined || extra === true ? this.use("value") : this.visit(extra, `${path}.additionalProperties`);
      const pair = `${this.keyGrammar(schema, path)} ":" ${value}`;
      if (max === 0) return '"{}"';
      const rest = repeat(`("," ${pair})`, Math.max(0, min - 1), max === undefined ? undefined : max - 1);
      return min === 0 ? `"{" (${pair} ${rest})? "}"` : `"{" ${pair} ${rest} "}"`;
    }
    this.checkPropertyNames(schema, path, listed);
    if (missing !== undefined) {
      if (extra === false) refuse(`${path}.required`, `requires "${missing}", which properties does not define`);
      properties[missing] = isObject(extra) ? extra : true;
    }
    // Every listed property is written (required first), as many as maxProperties allows.
    const names = [...required, ...Object.keys(properties).filter((n) => !required.includes(n))];
    if (max !== undefined && required.length > max)
      refuse(`${path}.maxProperties`, `is below the ${required.length} required properties`);
    const written = names.slice(0, max ?? names.length);
    if (written.length < min) unsupported(path, "minProperties", "it asks for more properties than the schema lists");
    const parts = written.map(
      (name, i) =>
        `${literal(`${i === 0 ? "" : ","}${asciiJson(name)}:`)} ${this.visit(properties[name], `${path}.properties.${name}`)}`,
    );
    return `"{" ${parts.join(" ")} "}"`;
  }

  /** The grammar of a map's keys: any string, or what `propertyNames` allows (a schema of strings). */
  private keyGrammar(schema: Schema, path: string): string {
    const names = schema.propertyNames;
    if (names === undefined || names === true) return this.use("string");
    const at = `${path}.propertyNames`;
    const strings =
      isObject(names) &&
      (names.type === "string" ||
        (Array.isArray(names.enum) && names.enum.every((v) => typeof v === "string")) ||
        typeof names.const === "string");
    if (!strings) refuse(at, 'expected a schema of strings (type "string", or a string enum or const)');
    return this.visit(names, at);
  }

  /** Listed property names must satisfy `propertyNames`: a schema whose own properties break it is refused. */
  private checkPropertyNames(schema: Schema, path: string, listed: string[]): void {
    if (!isObject(schema.propertyNames)) return;
    const breaks = listed.find((name) => schemaValidator(schema.propertyNames)(name) !== undefined);
    if (breaks !== undefined) refuse(`${path}.propertyNames`, `the property "${breaks}" does not satisfy it`);
  }

  private array(schema: Schema, path: string): string {
    if (schema.uniqueItems !== undefined && schema.uniqueItems !== false) unsupported(path, "uniqueItems");
    let prefix: unknown[] = [];
    let items: unknown = schema.items;
    if (Array.isArray(schema.items)) {
      prefix = schema.items; // the draft-4 tuple form
      items = true;
    }
    if (schema.prefixItems !== undefined) {
      if (!Array.isArray(schema.prefixItems)) refuse(`${path}.prefixItems`, "expected a list of schemas");
      prefix = schema.prefixItems;
    }
    const min = schema.minItems === undefined ? 0 : count(schema.minItems, `${path}.minItems`);
    const max = schema.maxItems === undefined ? undefined : count(schema.maxItems, `${path}.maxItems`);
    if (max !== undefined && max < min) refuse(`${path}.maxItems`, "is below minItems");
    if (prefix.length > 0) {
      const written = prefix.slice(0, max ?? prefix.length);
      const head = written.map((s, i) => this.visit(s, `${path}.prefixItems[${i}]`));
      const more = Math.max(0, min - written.length);
      let tail = "";
      if (more > 0) {
        if (items === false) refuse(`${path}.minItems`, "asks for more items than prefixItems allows (items is false)");
        const item = this.visit(items ?? true, `${path}.items`);
        tail = ` ${repeat(`("," ${item})`, more, more)}`;
      }
      return `"[" ${head.join(' "," ')}${tail} "]"`;
    }
    if (items === false || max === 0) {
      if (min > 0) refuse(`${path}.minItems`, "no item may be written");
      return '"[]"';
    }
    const item = this.visit(items ?? true, `${path}.items`);
    const rest = repeat(`("," ${item})`, Math.max(0, min - 1), max === undefined ? undefined : max - 1);
    return min === 0 ? `"[" (${item} ${rest})? "]"` : `"[" ${item} ${rest} "]"`;
  }

  private string(schema: Schema, path: string): string {
    const min = schema.minLength === undefined ? 0 : count(schema.minLength, `${path}.minLength`);
    const max = schema.maxLength === undefined ? undefined : count(schema.maxLength, `${path}.maxLength`);
    if (max !== undefined && max < min) refuse(`${path}.maxLength`, "is below minLength");
    const { format, pattern } = schema;
    if (format !== undefined && typeof format !== "string") refuse(`${path}.format`, "expected a string");
    if (pattern !== undefined) {
      if (typeof pattern !== "string") refuse(`${path}.pattern`, "expected a string");
      try {
        new RegExp(pattern, "u");
      } catch (error) {
        refuse(`${path}.pattern`, `not a regular expression: ${(error as Error).message}`);
      }
    }
    const enforced = typeof format === "string" && (ENFORCED_FORMATS as readonly string[]).includes(format);
    if (enforced || pattern !== undefined) {
      if (min > 0 || max !== undefined)
        unsupported(path, min > 0 ? "minLength" : "maxLength", `beside a ${enforced ? "format" : "pattern"}`);
      // A format beside a pattern (zod writes both): the format's grammar — bounded, and strict (RFC 4122 UUIDs, UTC
      // times) so that it is inside the patterns libraries write — and the answer checked against both.
      if (enforced) return `"\\"" ${this.use(format as string)} "\\""`;
      return `"\\"" ${new PatternParser(pattern as string, `${path}.pattern`).parse()} "\\""`;
    }
    if (typeof format === "string" && STANDARD_FORMATS.has(format))
      unsupported(
        path,
        "format",
        `Inferno writes the formats ${ENFORCED_FORMATS.join(", ")}, not "${format}" (a pattern would say what to write)`,
      );
    // Lengths count characters: a bounded string is written in ASCII (other characters as escapes), see asciiJson.
    const char = min > 0 || max !== undefined ? this.use("ascii-char") : this.use("char");
    return `"\\"" ${repeat(char, min, max)} "\\""`;
  }

  private number(schema: Schema, path: string, integer: boolean): string {
    const bound = (key: string): number | undefined => {
      const value = schema[key];
      if (value === undefined || typeof value === "boolean") return undefined;
      if (typeof value !== "number" || !Number.isFinite(value)) refuse(`${path}.${key}`, "expected a number");
      return value;
    };
    // Draft 4 spells exclusive bounds as booleans beside minimum / maximum.
    const lowExclusive = bound("exclusiveMinimum") ?? (schema.exclusiveMinimum === true ? bound("minimum") : undefined);
    const highExclusive =
      bound("exclusiveMaximum") ?? (schema.exclusiveMaximum === true ? bound("maximum") : undefined);
    const low = schema.exclusiveMinimum === true ? undefined : bound("minimum");
    const high = schema.exclusiveMaximum === true ? undefined : bound("maximum");
    // The integers in range; bounds beyond what is written (15 digits) leave that side open.
    const candidatesLow = [low === undefined ? -Infinity : Math.ceil(low)];
    if (lowExclusive !== undefined) candidatesLow.push(Math.floor(lowExclusive) + 1);
    const candidatesHigh = [high === undefined ? Infinity : Math.floor(high)];
    if (highExclusive !== undefined) candidatesHigh.push(Math.ceil(highExclusive) - 1);
    let a = Math.max(...candidatesLow);
    let b = Math.min(...candidatesHigh);
    if (a < -MAX_EXACT) a = -Infinity;
    if (b > MAX_EXACT) b = Infinity;
    if (a === -Infinity && b === Infinity) return this.use(integer ? "integer" : "number");
    const whole = integerRange(a, b);
    if (whole === null)
      unsupported(
        path,
        low !== undefined ? "minimum" : "exclusiveMinimum",
        "the range holds no integer, which answers are written from",
      );
    if (integer) return whole;
    // Fractions after an integer part I stay in [I, I + 1) (or (I - 1, I] for negative I): inside [a, b].
    const fraction = `("." [0-9]{1,${MAX_DIGITS}})`;
    const branches = [whole];
    const positive = integerRange(Math.max(a, 0), b - 1);
    if (positive) branches.push(`${positive} ${fraction}`);
    const negative = integerRange(Math.max(1, -b), -a - 1);
    if (negative) branches.push(`"-" ${negative} ${fraction}`);
    return alt(branches);
  }
}

/** The JSON text any object is (OpenAI's `json_object`, Ollama's `format: "json"`), compact. */
export function jsonObjectGrammar(): string {
  const builder = new GrammarBuilder(true);
  return builder.grammar(builder.use("object"));
}

/**
 * The GBNF grammar of a schema (root rule `root`, compact JSON), or BadRequest naming the offending keyword by its path
 * below `path` (e.g. `response_format.json_schema.schema.properties.age.multipleOf`).
 */
export function schemaGrammar(schema: unknown, path: string): string {
  if (schema !== true && !isObject(schema))
    refuse(path, `expected a JSON Schema object, found ${JSON.stringify(schema)}`);
  const builder = new GrammarBuilder(schema);
  return builder.grammar(builder.visit(schema, path));
}

/**
 * The grammar of one call among tools: `{"name":"NAME","arguments":ARGUMENTS}`, the arguments by the tool's
 * parameters (each a schema of its own, with its own references). With `answer`, the alternative to a call is an answer
 * `{"answer":ANSWER}`: any JSON object (`true`) or JSON valid against the schema, whose path names it in errors.
 */
export function callGrammar(
  tools: ReadonlyArray<{ name: string; parameters: unknown; index: number }>,
  answer?: { schema: unknown; path: string },
): string {
  const rules = new Map<string, string>();
  const branches = tools.map((tool) => {
    const builder = new GrammarBuilder(tool.parameters as Schema, rules, `t${tool.index}-`);
    const args = builder.visit(tool.parameters, `tools[${tool.index}].function.parameters`);
    return `${literal(`{"name":${asciiJson(tool.name)},"arguments":`)} ${args} "}"`;
  });
  if (answer) {
    const builder = new GrammarBuilder(answer.schema as Schema | true, rules, "answer-");
    const value = answer.schema === true ? builder.use("object") : builder.visit(answer.schema, answer.path);
    branches.push(`${literal(`{"${ANSWER_KEY}":`)} ${value} "}"`);
  }
  return new GrammarBuilder(true, rules).grammar(alt(branches));
}

/** The key of the answer beside calls in `callGrammar`'s answers. */
export const ANSWER_KEY = "answer";

/** Checks that a schema is in the enforced subset (BadRequest naming the keyword otherwise). */
export function checkSchema(schema: unknown, path: string): void {
  schemaGrammar(schema, path);
  schemaValidator(schema);
}

// ---------------------------------------------------------------------------------------------------------------------
// Validation of answers

const DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
function validDate(text: string): boolean {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!match) return false;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (month < 1 || month > 12 || day < 1 || day > (DAYS[month - 1] as number)) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return !(month === 2 && day === 29 && !leap);
}
const TIME = /^([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?([zZ]|[+-]([01]\d|2[0-3]):?[0-5]\d)$/;
const FORMATS: Record<(typeof ENFORCED_FORMATS)[number], (text: string) => boolean> = {
  date: validDate,
  time: (text) => TIME.test(text),
  "date-time": (text) => {
    const [date, time, ...rest] = text.split(/[Tt ]/);
    return rest.length === 0 && validDate(date ?? "") && TIME.test(time ?? "");
  },
  uuid: (text) => /^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$/.test(text),
  email: (text) => /^[^\s@"\\]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$/.test(text),
  hostname: (text) =>
    text.length <= 253 &&
    /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(text),
  uri: (text) => {
    if (!/^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*$/.test(text)) return false;
    try {
      return new URL(text).protocol !== "";
    } catch {
      return false;
    }
  },
  ipv4: (text) => /^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/.test(text),
};

/** The schema as ajv reads it: `nullable`, draft-4 tuples and exclusive flags in 2020-12 terms, `$schema` dropped. */
function forAjv(schema: unknown): unknown {
  if (!isObject(schema)) return schema;
  const out: Schema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === "$schema" || key === "nullable" || key === "$id") continue;
    if (["properties", "$defs", "definitions"].includes(key) && isObject(value)) {
      out[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, forAjv(v)]));
    } else if (["anyOf", "oneOf", "allOf", "prefixItems"].includes(key) && Array.isArray(value)) {
      out[key] = value.map(forAjv);
    } else if (key === "items" && Array.isArray(value)) {
      out.prefixItems = value.map(forAjv);
    } else if (["items", "additionalProperties"].includes(key)) {
      out[key] = forAjv(value);
    } else if (key === "format" && !(ENFORCED_FORMATS as readonly unknown[]).includes(value)) {
      // An annotation (or written through a pattern beside it): not checked.
    } else if ((key === "exclusiveMinimum" || key === "exclusiveMaximum") && typeof value === "boolean") {
      const bound = key === "exclusiveMinimum" ? "minimum" : "maximum";
      if (value && typeof schema[bound] === "number") out[key] = schema[bound];
    } else {
      out[key] = value;
    }
  }
  if (out.exclusiveMinimum !== undefined && schema.exclusiveMinimum === true) delete out.minimum;
  if (out.exclusiveMaximum !== undefined && schema.exclusiveMaximum === true) delete out.maximum;
  return schema.nullable === true ? { anyOf: [out, { type: "null" }] } : out;
}

let ajv: Ajv2020 | undefined;
const validators = new Map<string, ValidateFunction>();
const VALIDATORS_KEPT = 256;

/**
 * A validator for answers: the reason an answer breaks the schema (ajv's words, with the path), or undefined when it
 * validates. Compiled once per schema text (the last few hundred kept).
 */
export function schemaValidator(schema: unknown): (value: unknown) => string | undefined {
  const key = JSON.stringify(schema);
  let validate = validators.get(key);
  if (!validate) {
    ajv ??= new Ajv2020({ strict: false, allErrors: false, formats: FORMATS, validateFormats: true });
    try {
      validate = ajv.compile(forAjv(schema) as Schema);
    } catch (error) {
      throw new BadRequest(`the schema does not compile: ${(error as Error).message}`);
    }
    if (validators.size >= VALIDATORS_KEPT) validators.delete(validators.keys().next().value as string);
    validators.set(key, validate);
  }
  const compiled = validate;
  return (value) => {
    if (compiled(value)) return undefined;
    const [error] = compiled.errors ?? [];
    return error ? `${error.instancePath || "the answer"} ${error.message ?? "is invalid"}` : "is invalid";
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// node-llama-cpp's own subset, for `tool_choice: "auto"` (node-llama-cpp writes those calls with its grammar)

const LLAMA_KEYWORDS = new Set([
  "type",
  "enum",
  "const",
  "oneOf",
  "properties",
  "additionalProperties",
  "minProperties",
  "maxProperties",
  "items",
  "prefixItems",
  "minItems",
  "maxItems",
  "minLength",
  "maxLength",
  "description",
]);

/**
 * A checked schema loosened to the subset node-llama-cpp's function calling writes (references inlined, `anyOf` as
 * `oneOf`, bounds, patterns and most formats dropped): its calls are then checked against the schema itself.
 */
export function functionParamsSchema(schema: unknown): JsonSchema {
  const root = schema;
  const loosen = (s: unknown, depth: number): Schema => {
    if (!isObject(s) || depth > 16) return {};
    if (typeof s.$ref === "string") {
      let target: unknown = root;
      for (const key of s.$ref.slice(2).split("/").filter(Boolean)) target = isObject(target) ? target[key] : undefined;
      return loosen(target, depth + 1);
    }
    if (Array.isArray(s.allOf)) {
      return loosen(
        Object.assign({}, ...s.allOf.map((e) => (isObject(e) ? e : {})), { ...s, allOf: undefined }),
        depth + 1,
      );
    }
    const out: Schema = {};
    for (const [key, value] of Object.entries(s)) {
      if (key === "anyOf" || key === "oneOf") out.oneOf = (value as unknown[]).map((b) => loosen(b, depth + 1));
      else if (key === "properties" && isObject(value))
        out.properties = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, loosen(v, depth + 1)]));
      else if ((key === "items" || key === "additionalProperties") && isObject(value))
        out[key] = loosen(value, depth + 1);
      else if (key === "prefixItems" && Array.isArray(value)) out[key] = value.map((v) => loosen(v, depth + 1));
      else if (key === "format" && ["date", "time", "date-time"].includes(value as string)) out.format = value;
      else if (LLAMA_KEYWORDS.has(key)) out[key] = value;
    }
    if (s.nullable === true) return { oneOf: [out, { type: "null" }] };
    if (out.type === undefined && out.oneOf === undefined && out.enum === undefined && out.const === undefined) {
      if (out.properties !== undefined) out.type = "object";
      else
        return {
          oneOf: [
            { type: ["string", "number", "boolean", "null"] },
            { type: "object", additionalProperties: true },
            { type: "array" },
          ],
        };
    }
    if (out.type === "object" && out.properties !== undefined && out.additionalProperties === undefined)
      out.additionalProperties = false;
    return out;
  };
  return loosen(schema, 0);
}

/**
 * Turning text (an environment variable, a `config set` argument, a flag) into a value of a key's type, and checking a
 * value against its key's schema with a message that says what was expected and what was found.
 */
import { parse as parseToml } from "smol-toml";
import type { KeyInfo } from "./keys.js";

export type ParseResult = { ok: true; value: unknown } | { ok: false; expected: string };

/**
 * Booleans as text (environment variables, flags, `config set`): `true`/`false`, and the spellings environment
 * variables commonly use — `1`/`0`, `yes`/`no`, `on`/`off`, in any case. A TOML file takes only `true` and `false`.
 */
const TRUE = new Set(["true", "1", "yes", "on"]);
const FALSE = new Set(["false", "0", "no", "off"]);
/**
 * Numbers as text: decimal only, as TOML writes them (digits, `_` between digits, a sign; for a non-integer key also a
 * fraction and an exponent), with no space around: `1e3` for a port, `0x10`, `" 80"` or `Infinity` are refused rather
 * than read as something the user may not have meant.
 */
const INTEGER_TEXT = /^[+-]?\d+(?:_\d+)*$/;
const NUMBER_TEXT = /^[+-]?\d+(?:_\d+)*(?:\.\d+(?:_\d+)*)?(?:[eE][+-]?\d+)?$/;

/** A human description of what a key accepts: "a whole number", "one of: lru, cost-aware", … */
export function expectation(info: Pick<KeyInfo, "kind" | "choices">): string {
  switch (info.kind) {
    case "boolean":
      return "true or false";
    case "integer":
      return "a whole number";
    case "number":
      return "a number";
    case "string":
      return "a string";
    case "enum":
    case "gpu":
      return `one of: ${(info.choices ?? []).join(", ")}`;
    case "string-list": {
      if (!info.choices) return 'a list of strings (e.g. ["a.gguf", "b.gguf"] or a,b)';
      const [a = "", b = ""] = info.choices;
      return `a list of: ${info.choices.join(", ")} (e.g. ["${a}", "${b}"] or ${a},${b})`;
    }
  }
}

/** Parses `text` as a value of the key's kind. Does not apply the key's range checks; `checkValue` does. */
export function parseValue(info: Pick<KeyInfo, "kind" | "choices">, text: string): ParseResult {
  const trimmed = text.trim();
  switch (info.kind) {
    case "boolean": {
      const lower = trimmed.toLowerCase();
      if (TRUE.has(lower)) return { ok: true, value: true };
      if (FALSE.has(lower)) return { ok: true, value: false };
      return { ok: false, expected: expectation(info) };
    }
    case "integer":
    case "number": {
      const pattern = info.kind === "integer" ? INTEGER_TEXT : NUMBER_TEXT;
      const value = pattern.test(text) ? Number(text.replaceAll("_", "")) : Number.NaN;
      if (!Number.isFinite(value) || (info.kind === "integer" && !Number.isInteger(value))) {
        return { ok: false, expected: expectation(info) };
      }
      return { ok: true, value };
    }
    case "string":
    case "enum":
    case "gpu":
      return { ok: true, value: text };
    case "string-list": {
      if (trimmed === "" || trimmed === "[]") return { ok: true, value: [] };
      if (trimmed.startsWith("[")) {
        try {
          const value = (parseToml(`v = ${trimmed}`) as { v: unknown }).v;
          if (Array.isArray(value) && value.every((v) => typeof v === "string")) return { ok: true, value };
        } catch {
          // fall through to the error below
        }
        return { ok: false, expected: expectation(info) };
      }
      return {
        ok: true,
        value: trimmed
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s !== ""),
      };
    }
  }
}

/**
 * How the text given for a key reads after "found" in an error message: a number that parsed but failed a range check
 * unquoted as it was read (`99999`), anything else quoted as typed (`"many"`), so a number never looks like a string.
 */
export function foundText(parsed: ParseResult, text: string): string {
  return parsed.ok && typeof parsed.value === "number" ? String(parsed.value) : JSON.stringify(text);
}

/** How a found value reads in an error message: `"abc" (a string)`, `-3 (a number)`. */
export function describeFound(value: unknown): string {
  const type = Array.isArray(value) ? "a list" : value === null ? "null" : `a ${typeof value}`;
  const shown = typeof value === "string" ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  return `${shown.length > 60 ? `${shown.slice(0, 57)}...` : shown} (${type})`;
}

/**
 * Checks `value` against the key's schema. Returns undefined when valid, or the expectation to report: the zod message
 * for range checks ("Too small: expected number to be >0"), or the kind's expectation for type mismatches.
 */
export function checkValue(info: KeyInfo, value: unknown): string | undefined {
  const result = info.schema.safeParse(value);
  if (result.success) return undefined;
  const issue = result.error.issues[0];
  if (!issue || issue.code === "invalid_type" || issue.code === "invalid_union" || issue.code === "invalid_value") {
    return expectation(info);
  }
  return `${expectation(info)} (${issue.message.replace(/^Too (small|big): expected \w+ to (be|have) /, "").trim()})`;
}

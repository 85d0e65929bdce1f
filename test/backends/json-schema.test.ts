/** The JSON Schema subset as tables: what compiles into a grammar, how answers are validated, what is refused by its path. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { checkChat, pairToolResults } from "../../src/backends/common.js";
import { checkSchema, schemaGrammar, schemaValidator } from "../../src/backends/json-schema.js";
import { BadRequest } from "../../src/errors/index.js";

const at = "schema";

test("everyday schemas compile to compact grammars (zod's .int(), .min/.max, .email(), .regex(), .uuid(), .datetime())", () => {
  const zodLike = {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    type: "object",
    properties: {
      n: { type: "integer", minimum: -9007199254740991, maximum: 9007199254740991 },
      age: { type: "integer", minimum: 1, maximum: 120 },
      p: { type: "number", exclusiveMinimum: 0, maximum: 1 },
      e: {
        type: "string",
        format: "email",
        pattern:
          "^(?:[A-Za-z0-9_'+\\-]+\\.)*[A-Za-z0-9_'+\\-]*[A-Za-z0-9_+-]@(?:[A-Za-z0-9][A-Za-z0-9\\-]*\\.)+[A-Za-z]{2,}$",
      },
      r: { type: "string", pattern: "^[a-z]{3}-\\d{2}$" },
      u: { type: "string", format: "uuid" },
      d: { type: "string", format: "date-time" },
      s: { type: "string", minLength: 2, maxLength: 5 },
      nl: { type: ["string", "null"] },
      o: { anyOf: [{ $ref: "#/$defs/P" }, { type: "null" }] },
      list: { type: "array", items: { enum: ["a", "b"] }, minItems: 1, maxItems: 3 },
    },
    required: ["n", "age"],
    additionalProperties: false,
    $defs: { P: { type: "object", properties: { next: { $ref: "#/$defs/P" } }, nullable: true } },
  };
  const grammar = schemaGrammar(zodLike, at);
  assert.match(grammar, /^root ::= "\{" "\\"n\\":" /);
  assert.doesNotMatch(grammar, /\[ \\t\\n\]/, "no whitespace rule between tokens");
  checkSchema(zodLike, at);
});

test("integer ranges are written digit by digit, without leading zeros", () => {
  const table: Array<[Record<string, unknown>, string]> = [
    [{ type: "integer", minimum: 1, maximum: 12 }, '([1-9] | "1" [0-2])'],
    [{ type: "integer", minimum: 0, maximum: 9 }, "[0-9]"],
    [{ type: "integer", exclusiveMinimum: -3, exclusiveMaximum: 3 }, '("-" [1-2] | [0-2])'],
  ];
  for (const [schema, root] of table) assert.equal(schemaGrammar(schema, at).split("\n")[0], `root ::= ${root}`);
});

test("non-ASCII text in literals, keys and bounded strings is written as JSON escapes", () => {
  const grammar = schemaGrammar(
    { type: "object", properties: { café: { enum: ["é", "😀"] }, s: { maxLength: 2 } } },
    at,
  );
  assert.match(grammar, /caf\\\\u00e9/);
  assert.match(grammar, /\\\\ud83d\\\\ude00/);
  assert.match(grammar, /ascii-char\{0,2\}/);
  assert.match(schemaGrammar({ type: "string", pattern: "^é[a-zé]$" }, at), /\\\\u00e9" \[a-z\]/);
});

test("answers are validated: formats, bounds, patterns, nullable, draft-4 forms", () => {
  const table: Array<[unknown, unknown, boolean]> = [
    [{ type: "string", format: "date" }, "2024-02-29", true],
    [{ type: "string", format: "date" }, "2023-02-29", false],
    [{ type: "string", format: "date-time" }, "2024-01-31T23:59:59Z", true],
    [{ type: "string", format: "date-time" }, "2024-01-31T23:59:59", false],
    [{ type: "string", format: "time" }, "12:00:00+02:00", true],
    [{ type: "string", format: "uuid" }, "123e4567-e89b-12d3-a456-426614174000", true],
    [{ type: "string", format: "uuid" }, "123e4567", false],
    [{ type: "string", format: "email" }, "a.b@c-d.io", true],
    [{ type: "string", format: "email" }, "a@b", false],
    [{ type: "string", format: "made-up" }, "anything", true],
    [{ type: "string", format: "uri" }, "https://example.com/a", true],
    [{ type: "string", format: "uri" }, "example.com", false],
    [{ type: "string", format: "ipv4" }, "10.0.255.1", true],
    [{ type: "string", format: "ipv4" }, "10.0.256.1", false],
    [{ type: "string", format: "hostname" }, "a-b.example", true],
    [{ type: "integer", format: "int32" }, 7, true],
    [{ type: "object", propertyNames: { enum: ["a"] } }, { b: 1 }, false],
    [{ type: "integer", minimum: 1, exclusiveMaximum: 3 }, 3, false],
    [{ type: "number", minimum: 1, exclusiveMinimum: true }, 1, false],
    [{ type: "string", pattern: "^[a-z]{2}$" }, "abc", false],
    [{ type: "string", nullable: true }, null, true],
    [{ type: "array", items: [{ type: "string" }, { type: "integer" }] }, ["a", 1], true],
    [{ type: "array", items: [{ type: "string" }, { type: "integer" }] }, [1, "a"], false],
  ];
  for (const [schema, value, valid] of table) {
    assert.equal(
      schemaValidator(schema)(value) === undefined,
      valid,
      `${JSON.stringify(schema)} ${JSON.stringify(value)}`,
    );
  }
});

test("keywords the grammar cannot guarantee are refused by their path", () => {
  const table: Array<[unknown, string]> = [
    [{ type: "string", pattern: "^(?=a)b$" }, "schema.pattern"],
    [{ type: "string", pattern: '^a"b$' }, "schema.pattern"],
    [{ type: "string", pattern: "(a)\\1" }, "schema.pattern"],
    [{ type: "string", format: "ipv6" }, "schema.format"],
    [{ type: "object", properties: { B: {} }, propertyNames: { pattern: "^[a-z]+$" } }, "schema.propertyNames"],
    [{ type: "number", minimum: 0.2, maximum: 0.5 }, "schema.minimum"],
    [{ type: "object", properties: { a: { type: "integer", multipleOf: 2 } } }, "schema.properties.a.multipleOf"],
    [{ not: { type: "null" } }, "schema.not"],
    [{ type: "array", items: { type: "string" }, uniqueItems: true }, "schema.uniqueItems"],
    [{ allOf: [{ type: "string" }, { type: "integer" }] }, "schema.allOf[1].type"],
    [{ $ref: "https://example.com/s.json" }, "schema.$ref"],
    [{ type: "object", properties: { a: { $ref: "#/$defs/none" } } }, "schema.properties.a.$ref"],
    [{ type: "tuple" }, "schema.type"],
    [{ type: "string", minItems: 1 }, "schema.minItems"],
    [{ type: "string", minLength: 3, maxLength: 2 }, "schema.maxLength"],
    [42, "schema"],
  ];
  for (const [schema, param] of table) {
    assert.throws(
      () => checkSchema(schema, at),
      (error: unknown) => error instanceof BadRequest && (error.details as { param: string }).param === param,
      JSON.stringify(schema),
    );
  }
});

test("tool messages answer calls by id, else by name, else in order; Ollama-style messages without ids pair too", () => {
  const calls = [
    { id: "c1", name: "a", arguments: "{}" },
    { id: "c2", name: "b", arguments: '{"x":1}' },
  ];
  const paired = pairToolResults([
    { role: "user", content: "q" },
    { role: "assistant", content: null, toolCalls: calls },
    { role: "tool", name: "b", content: "B" },
    { role: "tool", content: "A" },
    { role: "user", content: "next" },
  ]);
  assert.deepEqual(paired[1], {
    role: "assistant",
    content: null,
    calls: [
      { call: calls[0], result: "A" },
      { call: calls[1], result: "B" },
    ],
  });
  assert.equal(paired.length, 3);
  assert.throws(
    () => checkChat([{ role: "user", content: "q" }], { tools: [{ name: "a" }, { name: "a" }] }),
    /tools\[1\]\.function\.name/,
  );
  assert.throws(() => checkChat([{ role: "user", content: "q" }], { toolChoice: "required" }), /tool_choice/);
});

/** The JSON Schema subset as a table: what translates into a grammar schema, and what is refused by its path. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { checkChat, pairToolResults } from "../../src/backends/chat-request.js";
import { grammarSchema } from "../../src/backends/json-schema.js";
import { BadRequest } from "../../src/errors/index.js";

const at = "schema";

test("supported schemas translate (required is implied, annotations dropped, $defs hoisted, formats kept)", () => {
  const table: Array<[unknown, unknown]> = [
    [{ type: "boolean", title: "t", $schema: "x" }, { type: "boolean" }],
    [
      { enum: ["a", 1, null], description: "d" },
      { enum: ["a", 1, null], description: "d" },
    ],
    [{ type: ["string", "null"] }, { type: ["string", "null"] }],
    [
      { type: "object", properties: { a: { type: "integer" } }, required: ["a"], additionalProperties: false },
      { type: "object", properties: { a: { type: "integer" } }, additionalProperties: false },
    ],
    [{ type: "object" }, { type: "object", additionalProperties: true }],
    [{ anyOf: [{ type: "string" }, { type: "null" }] }, { oneOf: [{ type: "string" }, { type: "null" }] }],
    [
      { type: "array", items: { const: 1 }, minItems: 1, maxItems: 2 },
      { type: "array", items: { const: 1 }, minItems: 1, maxItems: 2 },
    ],
    [
      { type: "string", format: "date" },
      { type: "string", format: "date" },
    ],
    [
      { type: "string", format: "email", maxLength: 9 },
      { type: "string", maxLength: 9 },
    ],
    [
      { type: "object", properties: { p: { $ref: "#/definitions/P" } }, definitions: { P: { type: "boolean" } } },
      {
        type: "object",
        properties: { p: { $ref: "#/$defs/P" } },
        additionalProperties: false,
        $defs: { P: { type: "boolean" } },
      },
    ],
  ];
  for (const [schema, expected] of table) assert.deepEqual(grammarSchema(schema, at), expected, JSON.stringify(schema));
});

test("keywords the grammar cannot guarantee are refused by their path", () => {
  const table: Array<[unknown, string]> = [
    [{ type: "string", pattern: "a+" }, "schema.pattern"],
    [{ type: "number", minimum: 0 }, "schema.minimum"],
    [{ type: "object", properties: { a: { type: "integer", multipleOf: 2 } } }, "schema.properties.a.multipleOf"],
    [{ not: { type: "null" } }, "schema.not"],
    [{ type: "array", items: { type: "string" }, uniqueItems: true }, "schema.uniqueItems"],
    [{ allOf: [{ type: "string" }, { maxLength: 3 }] }, "schema.allOf"],
    [{ $ref: "#" }, "schema.$ref"],
    [{ type: "object", properties: { a: { $ref: "#/$defs/none" } } }, "schema.properties.a.$ref"],
    [{ type: "tuple" }, "schema.type"],
    [{ type: "string", minItems: 1 }, "schema.minItems"],
    [{ enum: [[1]] }, "schema.enum"],
    [42, "schema"],
  ];
  for (const [schema, param] of table) {
    assert.throws(
      () => grammarSchema(schema, at),
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

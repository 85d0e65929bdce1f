/**
 * Valid or explicit, never silent: a property test of constrained output on real llama.cpp. Three tiny llamas whose
 * vocabularies differ from the demo model's (JSON pieces as tokens, a character-level one, one whose pieces straddle
 * JSON's punctuation) answer `json_schema`, `json_object`, forced tool calls and tools the model may call beside a
 * `json_schema` format at temperatures 0–1.5 under the default and extreme top-k / top-p / min-p, 200 seeds each: every
 * answer validates against its schema or ends at the token limit — and a forced call cut short is no call and no
 * assistant text.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { schemaValidator } from "../../src/backends/json-schema.js";
import { createBackends } from "../../src/backends/index.js";
import type { ChatOptions, GenerationResult, TextModel, ToolDefinition } from "../../src/backends/types.js";
import type { TinyVocabularyOptions } from "../../src/models/gguf-writer.js";
import { ModelManager } from "../../src/models/manager.js";
import { TEST_BACKEND, tinyModelsDir } from "../../testkit/models.js";
import { fileContext } from "../../testkit/server.js";

const JSON_PIECES = ['{"', '":', '",', '"}', "{", "}", "[", "]", '"', ":", ",", "-", ".", "true", "false", "null"];
const VOCABULARIES: Record<string, { vocabulary: TinyVocabularyOptions; seed: number }> = {
  "json-pieces": { vocabulary: { pieces: [...JSON_PIECES, ..."0123456789"] }, seed: 11 },
  characters: { vocabulary: { words: [], pieces: [...'abcdefghijklmnopqrstuvwxyz0123456789{}[]":,-.TZ@ '] }, seed: 12 },
  straddling: {
    vocabulary: {
      words: ["alpha", "beta", "gamma", "delta", "true", "false", "null"],
      pieces: ['":"', '","', '":{"', '"},{"', "1,", "0.", '":[', "],", '"a', 'b"', "12", "-0", "{}", "[]"],
    },
    seed: 13,
  },
};

const SCHEMA = {
  type: "object",
  properties: {
    n: { type: "integer", minimum: 1, maximum: 12 },
    c: { enum: ["a", "bc", null] },
    p: { type: "string", pattern: "^[a-c]\\d$" },
    x: { type: "number", exclusiveMinimum: -2, maximum: 2 },
  },
  required: ["n", "c", "p", "x"],
  additionalProperties: false,
};
const TOOLS: ToolDefinition[] = [
  {
    name: "add",
    parameters: {
      type: "object",
      properties: { a: { type: "integer", minimum: 0, maximum: 9 }, b: { type: ["integer", "null"] } },
      required: ["a", "b"],
    },
  },
  {
    name: "tag",
    parameters: { type: "object", properties: { t: { type: "string", maxLength: 3 }, ok: { type: "boolean" } } },
  },
];

const TEMPERATURES = [0, 0.5, 1, 1.5];
const SAMPLERS: Array<Pick<ChatOptions, "topK" | "topP" | "minP">> = [
  {},
  { topK: 1 },
  { topK: 0, topP: 1, minP: 0 },
  { topP: 0.01 },
  { minP: 0.99 },
  { topK: 2, topP: 0.1, minP: 0.5 },
];
type Kind = "json_schema" | "json_object" | "tools" | "either";
const SEEDS = Number(process.env.INFERNO_PROPERTY_SEEDS ?? 200);
/** Seeds per kind: a quarter for `either`, whose grammar is the forced call's and the format's side by side. */
const KIND_SEEDS: Record<Kind, number> = {
  json_schema: SEEDS,
  json_object: SEEDS,
  tools: SEEDS,
  either: Math.ceil(SEEDS / 4),
};
/** Enough for most finished answers of the character-level vocabulary (a call is ~45 characters), short otherwise. */
const MAX_TOKENS: Record<Kind, number> = { json_schema: 40, json_object: 40, tools: 56, either: 56 };
/** Room for the forced-call instructions in the system prompt. */
const BACKEND = { ...TEST_BACKEND, context_size: 1024 };

/** Why an answer breaks the property, or undefined when it holds. */
function broken(kind: Kind, result: GenerationResult): string | undefined {
  if (result.finishReason === "length") {
    if ((result.toolCalls?.length ?? 0) > 0) return "a cut call came back";
    if (kind === "tools" && result.text !== "") return "a cut call came back as text";
    return undefined;
  }
  if (kind === "tools" || (kind === "either" && result.toolCalls)) {
    const [call, ...more] = result.toolCalls ?? [];
    if (result.finishReason !== "tool_calls" || !call || more.length > 0 || result.text !== "") return "no single call";
    const tool = TOOLS.find((t) => t.name === call.name);
    if (!tool) return `unknown tool ${call.name}`;
    return schemaValidator(tool.parameters)(JSON.parse(call.arguments));
  }
  if (result.finishReason !== "stop") return `finish ${result.finishReason}`;
  let value: unknown;
  try {
    value = JSON.parse(result.text);
  } catch {
    return "not JSON";
  }
  if (kind === "json_object")
    return typeof value === "object" && value && !Array.isArray(value) ? undefined : "no object";
  return schemaValidator(SCHEMA)(value);
}

const backends = createBackends(BACKEND);
const files = fileContext();
let manager: ModelManager;

before(async () => {
  const gguf = Object.fromEntries(Object.entries(VOCABULARIES).map(([name, o]) => [`${name}.gguf`, o]));
  manager = new ModelManager((await tinyModelsDir(files.context, { gguf })).dir);
});
after(async () => {
  await backends[Symbol.asyncDispose]();
  await files.cleanUp();
});

// The three models answer side by side (one llama.cpp thread each).
describe("constrained output", { concurrency: true }, () => {
  for (const name of Object.keys(VOCABULARIES)) {
    describe(`${name} vocabulary`, () => {
      let model: TextModel;
      before(async () => {
        const gguf = backends.gguf as NonNullable<typeof backends.gguf>;
        model = (await gguf.load(await manager.resolve(name), { backend: BACKEND })) as TextModel;
      });
      after(() => model.dispose());

      for (const kind of ["json_schema", "json_object", "tools", "either"] as const) {
        test(`${kind}: ${KIND_SEEDS[kind]} seeds × temperatures 0–1.5 × samplers: valid, or cut at the limit`, async (t) => {
          const outcomes = { valid: 0, length: 0, calls: 0 };
          const failures: string[] = [];
          for (let seed = 0; seed < KIND_SEEDS[kind]; seed++) {
            const options: ChatOptions = {
              seed,
              maxTokens: MAX_TOKENS[kind],
              temperature: TEMPERATURES[seed % TEMPERATURES.length] as number,
              ...SAMPLERS[Math.floor(seed / TEMPERATURES.length) % SAMPLERS.length],
              ...(kind === "tools" || kind === "either"
                ? { tools: TOOLS, toolChoice: kind === "tools" ? ("required" as const) : ("auto" as const) }
                : {}),
              ...(kind === "tools"
                ? {}
                : {
                    format:
                      kind === "json_object"
                        ? { type: "json" as const }
                        : { type: "json_schema" as const, schema: SCHEMA },
                  }),
            };
            try {
              // Structured output through a completion (Ollama's generate with `format`; no chat template to render),
              // calls (forced, or beside a format) through a chat, the only way to them.
              const result =
                kind === "tools" || kind === "either"
                  ? await model.chat([{ role: "user", content: "go" }], options)
                  : await model.complete("{", options);
              const why = broken(kind, result);
              if (why) failures.push(`${JSON.stringify(options)} → ${why}: ${JSON.stringify(result)}`);
              else outcomes[result.finishReason === "length" ? "length" : "valid"]++;
              if (!why && result.toolCalls) outcomes.calls++;
            } catch (error) {
              failures.push(`${JSON.stringify(options)} → ${String(error)}`);
            }
          }
          assert.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${KIND_SEEDS[kind]} broke the property`);
          t.diagnostic(
            `${outcomes.valid} finished and valid (${outcomes.calls} calls), ${outcomes.length} cut at ${MAX_TOKENS[kind]} tokens`,
          );
          // The property is tested on finished answers too, not only on cut ones.
          assert.ok(outcomes.valid > 0, JSON.stringify(outcomes));
          // Beside a format, both of the grammar's branches are taken: calls and answers.
          if (kind === "either")
            assert.ok(outcomes.calls > 0 && outcomes.valid > outcomes.calls, JSON.stringify(outcomes));
        });
      }
    });
  }
});

/**
 * The official `openai` client through Debian's nginx, round-robin over three real nodes of one fleet
 * (testkit/nginx.ts, testkit/fleet.ts): chat, streaming, tool calls and embeddings answer as the holder answers its own
 * client, whichever node nginx picked; a client that leaves a stream ends the holder's generation, forwarded or not.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import OpenAI from "openai";
import { FLEET_API_KEY, type FleetTestNode, startFleet } from "../../testkit/fleet.js";
import { NGINX_SKIP, startNginx } from "../../testkit/nginx.js";
import { REDIS_SKIP, startRedis } from "../../testkit/redis.js";
import { waitFor } from "../../testkit/server.js";
import { WEATHER_TOOL } from "../../testkit/tools.js";

const MODEL = "chat.gguf";
const skip = REDIS_SKIP ?? NGINX_SKIP;
const client = (url: string) => new OpenAI({ baseURL: `${url}/v1`, apiKey: FLEET_API_KEY, maxRetries: 0 });
const messages = [{ role: "user" as const, content: "Say hello" }];

async function streamed(openai: OpenAI): Promise<string> {
  const stream = await openai.chat.completions.create({
    model: MODEL,
    messages,
    max_tokens: 6,
    temperature: 0,
    stream: true,
  });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
  return text;
}

/** A chat whose answer must be a call of `get_weather` (greedy: the same call from every node). */
const forcedToolCall = (openai: OpenAI) =>
  openai.chat.completions.create({
    model: MODEL,
    messages,
    max_tokens: 200,
    temperature: 0,
    tools: [WEATHER_TOOL],
    tool_choice: { type: "function", function: { name: "get_weather" } },
  });

/** The holder's aborted generations (a fleet node labels its series with its id: `{node="…"}`). */
const aborted = async (node: FleetTestNode) =>
  Number(/^inferno_generations_aborted_total(?:\{[^}]*\})? (\d+)$/m.exec(await node.metrics())?.[1] ?? 0);

describe("the openai client through nginx in front of a fleet", { skip, timeout: 120_000 }, () => {
  it("answers as the holder does, and a client abort ends the holder's generation", async (t) => {
    const redis = await startRedis(t);
    const models = { [MODEL]: { seed: 3 } };
    const fleet = await startFleet(t, redis.url, [models, models, models]);
    await fleet.settle();
    const nginx = await startNginx(
      t,
      fleet.nodes.map((n) => n.url),
    );
    const viaNginx = client(nginx.url);

    const first = await viaNginx.chat.completions.create({ model: MODEL, messages, max_tokens: 6, temperature: 0 });
    const loads = await fleet.loads();
    assert.equal(
      loads.reduce((a, b) => a + b),
      1,
    );
    const holder = fleet.nodes[loads.indexOf(1)]!;
    const direct = client(holder.url);
    await new Promise((resolve) => setTimeout(resolve, 300));

    // Three of each, so nginx's round robin sends at least two through a node that forwards to the holder.
    const want = await direct.chat.completions.create({ model: MODEL, messages, max_tokens: 6, temperature: 0 });
    assert.equal(first.choices[0]?.message.content, want.choices[0]?.message.content);
    const wantStream = await streamed(direct);
    const wantTool = await forcedToolCall(direct);
    assert.equal(wantTool.choices[0]?.finish_reason, "tool_calls");
    const wantCall = wantTool.choices[0]?.message.tool_calls?.[0];
    const wantEmbedding = await direct.embeddings.create({ model: MODEL, input: "hello fleet" });
    for (let i = 0; i < 3; i++) {
      const chat = await viaNginx.chat.completions.create({ model: MODEL, messages, max_tokens: 6, temperature: 0 });
      assert.equal(chat.choices[0]?.message.content, want.choices[0]?.message.content);
      assert.equal(await streamed(viaNginx), wantStream);
      const tool = await forcedToolCall(viaNginx);
      assert.equal(tool.choices[0]?.finish_reason, "tool_calls");
      const call = tool.choices[0]?.message.tool_calls?.[0];
      assert.ok(call?.type === "function" && wantCall?.type === "function");
      assert.equal(call.function.name, wantCall.function.name);
      assert.deepEqual(JSON.parse(call.function.arguments), JSON.parse(wantCall.function.arguments));
      const embedding = await viaNginx.embeddings.create({ model: MODEL, input: "hello fleet" });
      assert.deepEqual(embedding.data[0]?.embedding, wantEmbedding.data[0]?.embedding);
    }
    assert.equal(
      (await fleet.loads()).reduce((a, b) => a + b),
      1,
      "still one load in the fleet",
    );

    // Three streams left after their first chunk: each ends the generation on the holder (two at least forwarded).
    const before = await aborted(holder);
    for (let i = 0; i < 3; i++) {
      const controller = new AbortController();
      const stream = await viaNginx.completions.create(
        { model: MODEL, prompt: "Once upon a time", max_tokens: 400, temperature: 0, stream: true },
        { signal: controller.signal },
      );
      for await (const chunk of stream) {
        assert.ok(chunk.choices.length > 0);
        break;
      }
      controller.abort();
    }
    await waitFor(async () => (await aborted(holder)) - before === 3, 50);
    assert.equal(await nginx.errors().then((log) => /\[(emerg|alert|crit)\]/.test(log)), false);
  });
});

/** `GET /v1/cache/events`: the cache's events as SSE against a live server (the real cache on the fake backend). */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { it } from "node:test";
import { startFakeServer } from "../../testkit/fake-server.js";
import { SseClient } from "../../testkit/sse.js";

const post = (url: string, body: unknown = {}) =>
  fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }).then(
    async (r) => {
      assert.equal(r.status, 200, await r.clone().text());
      return r.json();
    },
  );

it("load → hit → evict → expire → save arrive as typed events with ids and times", async (t) => {
  const s = await startFakeServer(t, { behaviours: { "a.gguf": { loadMs: 30, memoryBytes: 2048 } } });
  const sse = await SseClient.connect(`${s.url}/v1/cache/events`);
  t.after(() => sse.close());
  assert.equal(sse.status, 200);

  await post(`${s.url}/v1/cache/models/a.gguf/load`);
  const loaded = await sse.waitFor((e) => e.type === "loaded");
  assert.equal(loaded.name, "a.gguf");
  assert.equal(loaded.bytes, 2048);
  assert.equal(typeof loaded.ms, "number");
  assert.ok(!Number.isNaN(Date.parse(String(loaded.time))));

  const lease = await s.cache.acquire("a.gguf");
  lease.release();
  await sse.waitFor((e) => e.type === "hit" && e.name === "a.gguf");

  const evict = await fetch(`${s.url}/v1/cache/models/a.gguf`, { method: "DELETE" });
  assert.equal(evict.status, 200);
  const evicted = await sse.waitFor((e) => e.type === "evicted");
  assert.equal(evicted.reason, "manual");
  assert.equal(typeof evicted.resident_seconds, "number");
  assert.equal(typeof evicted.idle_seconds, "number");

  await post(`${s.url}/v1/cache/models/b.gguf/load`, { keep_alive: "200ms" });
  const expired = await sse.waitFor((e) => e.type === "expired" && e.name === "b.gguf");
  assert.equal(typeof expired.idle_seconds, "number");
  await sse.waitFor((e) => e.type === "evicted" && e.name === "b.gguf" && e.reason === "ttl");

  await post(`${s.url}/v1/cache/save`);
  const saved = await sse.waitFor((e) => e.type === "saved");
  assert.equal(saved.ok, true);
  assert.ok(Number(saved.bytes) > 0);

  const types = sse.events().map((e) => e.type);
  const order = ["loading", "loaded", "hit", "evicted", "loaded", "expired", "evicted", "saved"];
  let at = 0;
  for (const type of types) if (type === order[at]) at++;
  assert.equal(at, order.length, `events in order ${order.join(" → ")}; got ${types.join(", ")}`);
  // Ids increase by one per event: a client can tell it missed none.
  const ids = sse.messages.map((m) => Number(m.id));
  for (let i = 1; i < ids.length; i++) assert.equal(ids[i], (ids[i - 1] as number) + 1);
  // The SSE event name is the type too, for EventSource's addEventListener.
  assert.ok(sse.messages.every((m) => JSON.parse(m.data).type === m.event));
});

it("a client reconnecting with Last-Event-ID gets what it missed from the backlog, then live events", async (t) => {
  const s = await startFakeServer(t, { server: { port: 0, eventsBacklog: 4 } });
  const first = await SseClient.connect(`${s.url}/v1/cache/events`);
  await post(`${s.url}/v1/cache/models/a.gguf/load`);
  await first.waitFor((e) => e.type === "loaded");
  const lastId = first.lastEventId as string;
  await first.close();

  // Missed while away: a hit and an eviction.
  (await s.cache.acquire("a.gguf")).release();
  await fetch(`${s.url}/v1/cache/models/a.gguf`, { method: "DELETE" });

  const again = await SseClient.connect(`${s.url}/v1/cache/events`, { lastEventId: lastId });
  t.after(() => again.close());
  await again.waitFor((e) => e.type === "evicted");
  assert.deepEqual(
    again.events().map((e) => e.type),
    ["hit", "evicted"],
  );
  assert.equal(again.messages[0]?.id, String(Number(lastId) + 1));

  await post(`${s.url}/v1/cache/save`);
  await again.waitFor((e) => e.type === "saved");

  // A fresh client starts from now; one too far behind gets what the ring still holds (the last 4).
  const fresh = await SseClient.connect(`${s.url}/v1/cache/events`);
  const behind = await SseClient.connect(`${s.url}/v1/cache/events`, { lastEventId: "0" });
  t.after(() => Promise.all([fresh.close(), behind.close()]));
  await behind.waitFor((e) => e.type === "saved");
  assert.equal(behind.messages.length, 4);
  assert.equal(fresh.messages.length, 0);
});

it("a client that does not read is dropped when its buffer fills; the cache and other clients go on", async (t) => {
  const s = await startFakeServer(t, { server: { port: 0, eventsClientBuffer: 256 } });
  await post(`${s.url}/v1/cache/models/a.gguf/load`);
  const reader = await SseClient.connect(`${s.url}/v1/cache/events`);
  t.after(() => reader.close());

  // The slow reader: a raw socket that sends its request and never reads again.
  const { port } = new URL(s.url);
  const socket = connect(Number(port), "127.0.0.1");
  t.after(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once("connect", resolve));
  socket.write(`GET /v1/cache/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
  await new Promise<void>((resolve) => socket.once("data", () => resolve()));
  socket.pause();

  // Hits until the kernel's socket buffers and then the client's bound fill: each one is cheap and never waits.
  let hits = 0;
  while (!s.warnings.some((w) => w.includes("event stream client dropped")) && hits < 200_000) {
    for (let i = 0; i < 100; i++) (await s.cache.acquire("a.gguf")).release();
    hits += 100;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  assert.ok(
    s.warnings.some((w) => w.includes("event stream client dropped")),
    `no drop after ${hits} hits`,
  );
  assert.equal(
    s.warnings.filter((w) => w.includes("event stream client dropped")).length,
    1,
    "only the slow reader is dropped",
  );

  // The dropped socket's response ends once it reads again; the reading client is still connected and current.
  socket.resume();
  await new Promise<void>((resolve) => socket.once("end", resolve));
  await post(`${s.url}/v1/cache/save`);
  await reader.waitFor((e) => e.type === "saved");
  assert.equal(reader.ended, false);
  assert.equal(reader.events().filter((e) => e.type === "hit").length, hits);
});

it("the events route obeys api_key", async (t) => {
  const s = await startFakeServer(t, { config: { server: { api_key: "sekret" } } });
  const refused = await SseClient.connect(`${s.url}/v1/cache/events`);
  assert.equal(refused.status, 401);
  const ok = await SseClient.connect(`${s.url}/v1/cache/events`, { headers: { Authorization: "Bearer sekret" } });
  t.after(() => ok.close());
  assert.equal(ok.status, 200);
});

it("/metrics: the same events feed an age-at-eviction histogram and a cache-miss delay histogram", async (t) => {
  const s = await startFakeServer(t, { behaviours: { "a.gguf": { loadMs: 120 } } });
  // One request misses, the other joins the load in flight: the miss delay is observed once.
  const [first, second] = await Promise.all([s.cache.acquire("a.gguf"), s.cache.acquire("a.gguf")]);
  first.release();
  second.release();
  await new Promise((resolve) => setTimeout(resolve, 50));
  await s.cache.evict("a.gguf");
  const text = await (await fetch(`${s.url}/metrics`)).text();
  assert.match(text, /^inferno_cache_miss_delay_seconds_count 1$/m);
  const delay = Number(/^inferno_cache_miss_delay_seconds_sum (\S+)$/m.exec(text)?.[1]);
  assert.ok(delay >= 0.1 && delay < 5, `miss delay ${delay}s covers the 120 ms load`);
  assert.match(text, /^inferno_cache_eviction_age_seconds_count\{reason="manual"\} 1$/m);
  const age = Number(/^inferno_cache_eviction_age_seconds_sum\{reason="manual"\} (\S+)$/m.exec(text)?.[1]);
  assert.ok(age >= 0.04 && age < 5, `age at eviction ${age}s`);
});

it("a model whose runtime dies arrives as a crashed event (reason crashed)", async (t) => {
  const s = await startFakeServer(t);
  const sse = await SseClient.connect(`${s.url}/v1/cache/events`);
  t.after(() => sse.close());
  await s.cache.load("a.gguf");
  const [model] = [...s.backend.live];
  assert.ok(model);
  model.crash();
  const crashed = await sse.waitFor((e) => e.type === "crashed");
  assert.equal(crashed.name, "a.gguf");
  assert.equal(crashed.reason, "crashed");
});

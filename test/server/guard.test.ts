/**
 * Browser safety by default (issue 23, item 2): a foreign `Host` (DNS rebinding), a cross-origin `Origin` and a body
 * that is not JSON are refused before any route runs; listed hosts and origins are let in, and only listed origins get
 * CORS headers.
 */
import assert from "node:assert/strict";
import { request } from "node:http";
import { it } from "node:test";
import { stats } from "../../testkit/hosts.js";
import { startTestServer } from "../../testkit/server.js";

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A raw HTTP request (fetch will not send a `Host` of our choosing). */
export function raw(
  url: string,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        hostname,
        port,
        path,
        method: options.method ?? "GET",
        headers: {
          ...(options.body === undefined ? {} : { "content-length": String(Buffer.byteLength(options.body)) }),
          ...options.headers,
        },
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

const CLEAR = JSON.stringify({ stats: true });

it("a cross-site text/plain POST, a foreign Origin and a foreign Host are refused and change nothing; the server's own clients still work", async (t) => {
  const s = await startTestServer(t);
  await s.openai().completions.create({ model: "tiny.gguf", prompt: "Hi", max_tokens: 1 });
  const before = await stats(s);
  assert.equal(before.misses, 1);

  // What a page on another site can send without a preflight: text/plain, its Origin attached.
  const crossSite = await raw(s.url, "/v1/cache/clear", {
    method: "POST",
    headers: { origin: "https://evil.example", "content-type": "text/plain" },
    body: CLEAR,
  });
  assert.equal(crossSite.status, 403, crossSite.body);
  assert.match(crossSite.body, /server\.allowed_origins/);
  assert.equal(crossSite.headers["access-control-allow-origin"], undefined);

  // The same body as text/plain without an Origin: still not JSON.
  const plain = await raw(s.url, "/v1/cache/clear", {
    method: "POST",
    headers: { "content-type": "text/plain" },
    body: CLEAR,
  });
  assert.equal(plain.status, 415, plain.body);
  assert.match(plain.body, /Content-Type: application\/json/);
  const untyped = await raw(s.url, "/v1/cache/clear", { method: "POST", body: CLEAR });
  assert.equal(untyped.status, 415);

  // DNS rebinding: the page's own name in Host, on every kind of route.
  for (const path of ["/health", "/v1/models", "/v1/cache/stats", "/api/tags", "/"]) {
    const rebound = await raw(s.url, path, { headers: { host: "attacker.example:8080" } });
    assert.equal(rebound.status, 403, `${path}: ${rebound.body}`);
    assert.match(rebound.body, /server\.allowed_hosts/);
  }
  const rebindClear = await raw(s.url, "/v1/cache/clear", {
    method: "POST",
    headers: { host: "attacker.example", "content-type": "application/json" },
    body: CLEAR,
  });
  assert.equal(rebindClear.status, 403);

  const after = await stats(s);
  assert.equal(after.misses, 1, "no statistic was erased");
  assert.equal(after.models.length, 1);
  assert.equal(after.models_loaded, 1, "no model was unloaded");

  // Loopback names, IP addresses and the server's own pages pass.
  const port = new URL(s.url).port;
  for (const host of [
    `localhost:${port}`,
    `127.0.0.1:${port}`,
    `[::1]:${port}`,
    `app.localhost:${port}`,
    `host.docker.internal:${port}`,
    `box.local`,
  ]) {
    assert.equal((await raw(s.url, "/health", { headers: { host } })).status, 200, host);
  }
  const sameOrigin = await raw(s.url, "/v1/cache/save", {
    method: "POST",
    headers: { origin: s.url, "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(sameOrigin.status, 200, sameOrigin.body);
  assert.equal(sameOrigin.headers["access-control-allow-origin"], undefined, "same origin needs no CORS");
  const json = await raw(s.url, "/v1/cache/save", {
    method: "POST",
    headers: { "content-type": "application/json; charset=utf-8" },
    body: "{}",
  });
  assert.equal(json.status, 200);
});

it("listed hosts and origins are let in; only a listed origin gets CORS headers and its preflight answered", async (t) => {
  const ui = "http://ui.example:3000";
  const s = await startTestServer(t, {
    config: {
      server: { allowed_hosts: ["inferno.lan", "*.corp.example"], allowed_origins: [ui, "http://*.dev.example"] },
    },
  });
  assert.equal((await raw(s.url, "/health", { headers: { host: "inferno.lan:8080" } })).status, 200);
  assert.equal((await raw(s.url, "/health", { headers: { host: "box.corp.example" } })).status, 200);
  assert.equal((await raw(s.url, "/health", { headers: { host: "corp.example.evil" } })).status, 403);

  const preflight = await raw(s.url, "/v1/chat/completions", {
    method: "OPTIONS",
    headers: {
      origin: ui,
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type,authorization",
    },
  });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers["access-control-allow-origin"], ui);
  assert.match(String(preflight.headers["access-control-allow-methods"]), /POST/);
  assert.equal(preflight.headers["access-control-allow-headers"], "content-type,authorization");

  const call = await raw(s.url, "/v1/models", { headers: { origin: ui } });
  assert.equal(call.status, 200);
  assert.equal(call.headers["access-control-allow-origin"], ui);
  assert.equal((await raw(s.url, "/v1/models", { headers: { origin: "http://a.dev.example" } })).status, 200);
  // Answers written to the Node response directly (a completion, a stream) carry them too: the page can read them.
  for (const stream of [false, true]) {
    const completion = await raw(s.url, "/v1/completions", {
      method: "POST",
      headers: { origin: ui, "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny.gguf", prompt: "Hi", max_tokens: 1, stream }),
    });
    assert.equal(completion.status, 200, completion.body);
    assert.equal(completion.headers["access-control-allow-origin"], ui, `stream: ${stream}`);
  }

  const other = await raw(s.url, "/v1/chat/completions", {
    method: "OPTIONS",
    headers: { origin: "http://ui.example:3001", "access-control-request-method": "POST" },
  });
  assert.equal(other.status, 403);
  assert.equal(other.headers["access-control-allow-origin"], undefined);
  assert.equal((await raw(s.url, "/v1/models", { headers: { origin: "null" } })).status, 403);
});

it('allowed_origins = ["*"] opens the API to every page', async (t) => {
  const s = await startTestServer(t, { config: { server: { allowed_origins: ["*"] } } });
  const answer = await raw(s.url, "/v1/models", { headers: { origin: "https://anywhere.example" } });
  assert.equal(answer.status, 200);
  assert.equal(answer.headers["access-control-allow-origin"], "https://anywhere.example");
});

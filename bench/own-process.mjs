/**
 * The bench's baselines, each in a fresh process of its own (issue 25): node-llama-cpp called directly, and the HTTP
 * floor (a bare `node:http` server whose handler calls node-llama-cpp in the same process). Never inside the bench
 * process (whose heap, JIT state and timers would weigh on the baseline), never through a model host.
 *
 * Plain JavaScript, run by `node` with no loader: nothing of Inferno's (or tsx's) is imported, only node-llama-cpp.
 * The bench drives it over IPC (`bench/own-process.ts`): every operation is timed HERE, around the call, and answered
 * with its figures, the process's pid and its CPU time (`process.cpuUsage`, every thread) so far.
 *
 * Operations (one message each, answered in order):
 * - `{ op: "start", threads }`: starts llama.cpp (CPU) — untimed, what a runner does before any load;
 * - `{ op: "load", path, contextSize, sequences }`: loads the model and creates a context of `sequences` sequences;
 * - `{ op: "complete" | "chat", prompt, maxTokens }`: one greedy generation on sequence 0, streamed token by token:
 *   `ms` to the end, `firstMs` to the first token, `gaps` between tokens;
 * - `{ op: "concurrent", prompt, maxTokens, clients }`: `clients` generations at once, one per sequence: `ms` until the
 *   last ends, `tokens` generated in all;
 * - `{ op: "cold", path, contextSize, prompt }`: load, context and the first streamed token of a model not loaded
 *   (`firstMs`), then unloads it;
 * - `{ op: "serve" }`: the floor — a bare `node:http` server on loopback whose handler parses the JSON body
 *   (`prompt`, `max_tokens`, `stream`) and answers with the direct completion (as server-sent events when `stream`);
 *   answered with its `url`;
 * - `{ op: "proxy", target }`: the bare hop — a minimal `node:http` reverse proxy on loopback that pipes each request
 *   (method, path, headers, body) to `target` over a keep-alive connection and pipes the answer back (status, headers,
 *   body); no model needed, answered with its `url`;
 * - `{ op: "relay", target }`: the process hop alone — a TCP relay that passes bytes both ways without reading them (no
 *   HTTP: it could not tell which model a request names); answered with its `url`;
 * - `{ op: "route", target }`: the least an HTTP-aware forward does — written on `node:net`, no HTTP library: reads a
 *   request's head and its Content-Length body, parses the body's JSON for its `model` (what a router must read),
 *   writes the request's bytes to a kept connection and passes the answer's bytes back once its Content-Length is in
 *   (no chunked answers, no errors handled: a floor, not a proxy); answered with its `url`;
 * - `{ op: "cpu" }`: only the pid and CPU time.
 */
import { Agent, createServer, request as httpRequest } from "node:http";
import { connect, createServer as createTcpServer } from "node:net";
import { performance } from "node:perf_hooks";
import { getLlama, LlamaChat, LlamaCompletion, LlamaLogLevel, resolveChatWrapper } from "node-llama-cpp";

let llama;
let model;
let context;
let sequences = [];
let chatWrapper;

const cpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

/** A greedy generation on `sequence`, timed from the call: to the end, to the first token, between tokens. */
async function generate(kind, sequence, prompt, maxTokens) {
  const started = performance.now();
  let firstMs = NaN;
  let last = started;
  const gaps = [];
  let tokens = 0;
  const onToken = (chunk) => {
    const now = performance.now();
    if (tokens === 0) firstMs = now - started;
    else gaps.push(now - last);
    last = now;
    tokens += chunk.length;
  };
  const settings = { maxTokens, temperature: 0, onToken };
  if (kind === "chat") {
    const chat = new LlamaChat({ contextSequence: sequence, autoDisposeSequence: false, chatWrapper });
    try {
      await chat.generateResponse(
        [
          { type: "user", text: prompt },
          { type: "model", response: [] },
        ],
        settings,
      );
    } finally {
      chat.dispose({ disposeSequence: false });
    }
  } else {
    const completion = new LlamaCompletion({ contextSequence: sequence, autoDisposeSequence: false });
    try {
      await completion.generateCompletion(prompt, settings);
    } finally {
      completion.dispose({ disposeSequence: false });
    }
  }
  // As Inferno does between requests with the prompt cache off: the sequence starts empty each time.
  await sequence.clearHistory();
  return { ms: performance.now() - started, firstMs, gaps, tokens };
}

async function load(path, contextSize, count) {
  model = await llama.loadModel({ modelPath: path, gpuLayers: 0, useMmap: false });
  context = await model.createContext({ contextSize, sequences: count, batchSize: 512 });
  sequences = Array.from({ length: count }, () => context.getSequence());
  // Resolved once per model, as Inferno does (resolving renders the model's chat template many times).
  chatWrapper = resolveChatWrapper(model);
}

/** The floor: a bare node:http server; its handler makes the direct call in this process. */
function serve() {
  const server = createServer((request, response) => {
    let text = "";
    request.setEncoding("utf8");
    request.on("data", (chunk) => (text += chunk));
    request.on("end", () => {
      const body = JSON.parse(text);
      const sequence = sequences[0];
      if (body.stream) {
        response.writeHead(200, { "content-type": "text/event-stream" });
        const completion = new LlamaCompletion({ contextSequence: sequence, autoDisposeSequence: false });
        completion
          .generateCompletion(body.prompt, {
            maxTokens: body.max_tokens,
            temperature: 0,
            onTextChunk: (chunk) => response.write(`data: ${JSON.stringify({ text: chunk })}\n\n`),
          })
          .then(
            () => sequence.clearHistory(),
            (error) => response.write(`data: ${JSON.stringify({ error: String(error) })}\n\n`),
          )
          .finally(() => {
            completion.dispose({ disposeSequence: false });
            response.end("data: [DONE]\n\n");
          });
        return;
      }
      const completion = new LlamaCompletion({ contextSequence: sequence, autoDisposeSequence: false });
      completion
        .generateCompletion(body.prompt, { maxTokens: body.max_tokens, temperature: 0 })
        .then(async (text) => {
          await sequence.clearHistory();
          const reply = JSON.stringify({ text });
          response.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(reply) });
          response.end(reply);
        })
        .catch((error) => {
          response.writeHead(500);
          response.end(String(error));
        })
        .finally(() => completion.dispose({ disposeSequence: false }));
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${server.address().port}`)),
  );
}

/** The bare hop: what any reverse proxy written on node:http does, nothing more. */
function proxy(target) {
  const agent = new Agent({ keepAlive: true });
  const server = createServer((request, response) => {
    const upstream = httpRequest(
      `${target}${request.url}`,
      { method: request.method, headers: request.headers, agent },
      (answer) => {
        response.writeHead(answer.statusCode, answer.headers);
        answer.pipe(response);
      },
    );
    upstream.on("error", (error) => {
      response.writeHead(502);
      response.end(String(error));
    });
    request.pipe(upstream);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${server.address().port}`)),
  );
}

/** Listens on loopback with a `node:net` server; resolves with its URL. */
function listenTcp(server) {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${server.address().port}`)),
  );
}

/** The process hop alone: bytes passed both ways on a connection of their own to `target`, never read. */
function relay(target) {
  const { hostname, port } = new URL(target);
  const server = createTcpServer((client) => {
    const upstream = connect(Number(port), hostname);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  return listenTcp(server);
}

const HEAD_END = Buffer.from("\r\n\r\n");

/** Where an HTTP message's head ends in `bytes`, and its Content-Length; null until the head is in. */
function messageHead(bytes) {
  const end = bytes.indexOf(HEAD_END);
  if (end < 0) return null;
  const match = /\r\ncontent-length: *(\d+)/i.exec(bytes.subarray(0, end).toString("latin1"));
  return { bodyAt: end + 4, length: match ? Number(match[1]) : 0 };
}

/**
 * Reads whole HTTP messages from `socket` (head and Content-Length body), one at a time: calls `onMessage(bytes,
 * bodyAt)` for each.
 */
function messages(socket, onMessage) {
  let pending = Buffer.alloc(0);
  socket.on("data", (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    for (;;) {
      const head = messageHead(pending);
      if (head === null || pending.length < head.bodyAt + head.length) return;
      const message = pending.subarray(0, head.bodyAt + head.length);
      pending = pending.subarray(message.length);
      onMessage(message, head.bodyAt);
    }
  });
}

/**
 * The least an HTTP-aware forward does: each request read whole, its body's model read, its bytes written to a kept
 * connection to `target`, the answer's bytes passed back once whole. One request at a time per client connection.
 */
function route(target) {
  const { hostname, port } = new URL(target);
  const idle = [];
  const server = createTcpServer((client) => {
    client.setNoDelay(true);
    messages(client, (request, bodyAt) => {
      const { model } = JSON.parse(request.subarray(bodyAt).toString("utf8"));
      if (typeof model !== "string") throw new Error("no model in the request");
      let upstream = idle.pop();
      if (upstream === undefined) {
        upstream = connect(Number(port), hostname);
        upstream.setNoDelay(true);
        messages(upstream, (answer) => upstream.answer(answer));
      }
      upstream.answer = (answer) => {
        idle.push(upstream);
        client.write(answer);
      };
      upstream.write(request);
    });
  });
  return listenTcp(server);
}

const operations = {
  async start({ threads }) {
    llama = await getLlama({
      gpu: false,
      build: "never",
      skipDownload: true,
      progressLogs: false,
      logLevel: LlamaLogLevel.error,
    });
    llama.maxThreads = threads;
    return {};
  },
  async load({ path, contextSize, sequences: count }) {
    const started = performance.now();
    await load(path, contextSize, count);
    return { ms: performance.now() - started };
  },
  complete: ({ prompt, maxTokens }) => generate("complete", sequences[0], prompt, maxTokens),
  chat: ({ prompt, maxTokens }) => generate("chat", sequences[0], prompt, maxTokens),
  async concurrent({ prompt, maxTokens, clients }) {
    const started = performance.now();
    const runs = await Promise.all(
      sequences.slice(0, clients).map((sequence) => generate("complete", sequence, prompt, maxTokens)),
    );
    return { ms: performance.now() - started, tokens: runs.reduce((sum, r) => sum + r.tokens, 0) };
  },
  async cold({ path, contextSize, prompt }) {
    const started = performance.now();
    await load(path, contextSize, 1);
    const loadedMs = performance.now() - started;
    const first = await generate("complete", sequences[0], prompt, 1);
    const firstMs = loadedMs + first.firstMs;
    await context.dispose();
    await model.dispose();
    return { firstMs };
  },
  async serve() {
    return { url: await serve() };
  },
  async proxy({ target }) {
    return { url: await proxy(target) };
  },
  async relay({ target }) {
    return { url: await relay(target) };
  },
  async route({ target }) {
    return { url: await route(target) };
  },
  async cpu() {
    return {};
  },
};

process.on("message", (message) => {
  const operation = operations[message.op];
  Promise.resolve(operation ? operation(message) : Promise.reject(new Error(`unknown op ${message.op}`))).then(
    (result) => process.send({ id: message.id, ok: true, pid: process.pid, cpuMs: cpuMs(), ...result }),
    (error) => process.send({ id: message.id, ok: false, pid: process.pid, error: String(error?.stack ?? error) }),
  );
});
process.on("disconnect", () => process.exit(0));
process.send({ id: 0, ok: true, pid: process.pid, cpuMs: cpuMs() });

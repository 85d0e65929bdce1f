/**
 * Security on a real server with an API key, a models directory and, beside it, a valid model that must stay out of
 * reach (`outside/secret.gguf`, also reachable through a symlinked file and a symlinked directory inside the models
 * directory). The routes come from the app itself (`server.app.app.routes`), so a new route is covered without an
 * edit here; only the sample request bodies are a table, and the scenario fails when a route has none.
 *
 * - API key: every `/v1`, `/api` and `/v2` route without a key, with a wrong one, with an empty one, and through path
 *   spellings that might slip past the middleware (case, doubled slashes, dot segments, encoded letters): 401 (or a
 *   404 that serves nothing), never the route.
 * - Traversal: every route that takes a model name — in the path (`:name`) or in the body — with escaping names
 *   (relative, absolute, backslashes, NUL, `~`, symlinks) and, in paths, URL-encoded, double-encoded and raw dot
 *   segments: a 4xx (never a 200 or a 5xx), no load outside the models directory (watched on the cache's events), and
 *   no server path in any answer.
 * - Limits: a body over the limit is 413; prompt, message and input lists over their limits are 400, at once.
 * - File modes: the cache directory the server created is 0700, the state file 0600.
 */
import { request as httpRequest } from "node:http";
import { mkdir, realpath, stat, symlink } from "node:fs/promises";
import { join } from "node:path";
import { STATE_FILE_NAME } from "../../src/cache/persistence/file-store.js";
import { type Scenario, Tally, withTempDir } from "../../testkit/scenario.js";
import { writeModels, withStressServer } from "../server.js";

export interface SecurityParams {
  /** Answers slower than this to a list over its limit count as not refused at once. */
  limitAnswerMs: number;
}

/** Issue 14's list limits (`server.max_prompts`, …) for a build whose configuration does not have them yet. */
const LIST_LIMIT_DEFAULTS: Record<string, number> = { max_prompts: 64, max_messages: 2048, max_embedding_inputs: 2048 };

const KEY = "stress-api-key";
const MODEL = "tiny.gguf";
const user = [{ role: "user", content: "hi" }];

/**
 * A request body per route that takes a body, given the model name to put in it; valid with a real model name (the
 * scenario checks that first), so a refusal of an escaping name is about the name.
 */
const BODIES: Record<string, (model: string) => unknown> = {
  "POST /v1/chat/completions": (model) => ({ model, messages: user, max_tokens: 1, temperature: 0 }),
  "POST /v1/completions": (model) => ({ model, prompt: "hi", max_tokens: 1, temperature: 0 }),
  "POST /v1/embeddings": (model) => ({ model, input: "hi" }),
  "POST /v1/responses": (model) => ({ model, input: "hi", max_output_tokens: 16, temperature: 0 }),
  "POST /v1/cache/clear": (model) => ({ model }),
  "POST /v1/cache/warmup": (model) => ({ models: [model] }),
  "POST /v1/cache/save": () => ({}),
  "POST /v1/cache/models/:name{.+}/load": () => ({}),
  "POST /api/show": (model) => ({ model }),
  "POST /api/generate": (model) => ({
    model,
    prompt: "hi",
    stream: false,
    options: { num_predict: 1, temperature: 0 },
  }),
  "POST /api/chat": (model) => ({ model, messages: user, stream: false, options: { num_predict: 1, temperature: 0 } }),
  "POST /api/embed": (model) => ({ model, input: "hi" }),
  "POST /api/embeddings": (model) => ({ model, prompt: "hi" }),
  "POST /api/pull": (model) => ({ model }),
  "POST /api/push": (model) => ({ model }),
  "POST /api/create": (model) => ({ model }),
  "POST /api/copy": (model) => ({ source: model, destination: `${model}-copy` }),
  "DELETE /api/delete": (model) => ({ model }),
  "POST /api/blobs/:digest": () => ({}),
};
/** Body routes that take no model name (the rest of BODIES does). */
const NO_NAME = new Set(["POST /v1/cache/save", "POST /v1/cache/models/:name{.+}/load", "POST /api/blobs/:digest"]);

interface Route {
  method: string;
  path: string;
  id: string;
}

/** Every route of the app, as registered (middleware entries left out). */
function routesOf(app: { routes: Array<{ method: string; path: string }> }): Route[] {
  const seen = new Map<string, Route>();
  for (const r of app.routes) {
    if (r.method === "ALL") continue;
    const id = `${r.method} ${r.path}`;
    seen.set(id, { method: r.method, path: r.path, id });
  }
  return [...seen.values()];
}

const protectedRoute = (r: Route) => /^\/(v1|api|v2)(\/|$)/.test(r.path);
const takesPathName = (r: Route) => r.path.includes(":name");
/** The path with its name parameter filled in (already encoded as it should travel). */
const fill = (r: Route, encodedName: string) => r.path.replace(/:name(\{[^}]*\})?/, encodedName);

interface Answer {
  status: number;
  text: string;
  ms: number;
}

/** One request with the path sent byte for byte (fetch would resolve dot segments before sending). */
function send(
  url: string,
  method: string,
  rawPath: string,
  options: { key?: string | null; body?: unknown; timeoutMs?: number } = {},
): Promise<Answer> {
  const { hostname, port } = new URL(url);
  const payload =
    options.body === undefined
      ? undefined
      : Buffer.from(typeof options.body === "string" ? options.body : JSON.stringify(options.body));
  const headers: Record<string, string | number> = {};
  if (payload) Object.assign(headers, { "content-type": "application/json", "content-length": payload.length });
  const key = options.key === undefined ? KEY : options.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { hostname, port, method, path: rawPath, headers, agent: false, timeout: options.timeoutMs ?? 60_000 },
      (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text, ms: performance.now() - started }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${options.timeoutMs} ms`)));
    req.on("error", (error) => resolve({ status: 0, text: String(error), ms: performance.now() - started }));
    // A server that answers (413) before reading the whole body closes the socket under the write: not a failure here.
    req.on("socket", (socket) => socket.on("error", () => {}));
    if (payload) req.write(payload);
    req.end();
  });
}

/** Names that try to reach `outside/secret.gguf` (or anything else) from the models directory. */
function escapingNames(root: string): string[] {
  return [
    "../outside/secret.gguf",
    "./../outside/secret.gguf",
    "sub/../../outside/secret.gguf",
    "../../../../../../../../etc/passwd",
    "..\\outside\\secret.gguf",
    join(root, "outside", "secret.gguf"),
    "/etc/passwd",
    "link-out.gguf",
    "linkdir/secret.gguf",
    "secret.gguf",
    `${MODEL}\u0000../outside/secret.gguf`,
    "~/../outside/secret.gguf",
    "$HOME/../outside/secret.gguf",
    "%2e%2e/outside/secret.gguf",
    "....//outside/secret.gguf",
  ];
}

/** Ways to write an escaping name into a URL path. */
function pathSpellings(name: string): string[] {
  const encoded = encodeURIComponent(name);
  return [encoded, encoded.replace(/\./g, "%2e"), encoded.replace(/%/g, "%25"), name.replaceAll("\u0000", "%00")];
}

export async function security(p: SecurityParams): Promise<ReturnType<Tally["result"]>> {
  const tally = new Tally();
  await withTempDir("security", async (root) => {
    await writeModels(join(root, "outside"), ["secret.gguf"]);
    const modelsDir = join(root, "models");
    await mkdir(modelsDir, { recursive: true });
    await symlink(join(root, "outside", "secret.gguf"), join(modelsDir, "link-out.gguf"));
    await symlink(join(root, "outside"), join(modelsDir, "linkdir"));
    await withStressServer({ root, models: [MODEL], settings: { "server.api_key": KEY } }, async (s) => {
      const inside = await realpath(modelsDir);
      const escapes: string[] = [];
      const off = s.runtime.cache.on("loading", (e) => {
        if (!e.key.startsWith(`${inside}/`)) escapes.push(e.key);
      });
      const routes = routesOf(s.server.app.app);
      tally.set("routes", routes.length);
      const guarded = routes.filter(protectedRoute);
      tally.set("v1_api_v2_routes", guarded.length);
      tally.set("v2_routes", guarded.filter((r) => r.path.startsWith("/v2")).length);
      const bodyRoutes = routes.filter(
        (r) => r.method === "POST" || r.method === "DELETE" || r.method === "PUT" || r.method === "PATCH",
      );
      const withoutSample = bodyRoutes.filter((r) => !(r.id in BODIES) && !(r.method === "DELETE" && takesPathName(r)));
      tally.check(
        withoutSample.length === 0,
        () => `routes without a sample body in security.ts: ${withoutSample.map((r) => r.id).join(", ")}`,
      );
      const bodyFor = (r: Route, model: string) => BODIES[r.id]?.(model);
      const pathFor = (r: Route, encodedName: string) => (takesPathName(r) ? fill(r, encodedName) : r.path);

      tally.phase("samples");
      // Every sample is valid with the real model name (else a refusal below would prove nothing); the key works.
      for (const r of routes.filter((r) => r.id in BODIES || takesPathName(r))) {
        const answer = await send(s.url, r.method, pathFor(r, MODEL), { body: bodyFor(r, MODEL) });
        const ok = answer.status === 200 || answer.status === 501;
        tally.check(
          ok,
          () =>
            `${r.id} with ${MODEL} and the key: ${answer.status} ${answer.text.slice(0, 200)} (the sample must be valid)`,
        );
      }

      tally.phase("api_key");
      const keyCases: Array<[string, string | null]> = [
        ["no key", null],
        ["a wrong key", "wrong"],
        ["an empty key", ""],
        ["the key with a suffix", `${KEY}x`],
      ];
      for (const r of guarded) {
        const path = pathFor(r, MODEL);
        const spellings = [
          path,
          path.toUpperCase(),
          `/${path}`,
          path.replace(/^\/(\w+)\//, "/$1/./"),
          path.replace(/^\/(\w+)\//, "/x/../$1/"),
          path.replace(/^\/v/, "/%76").replace(/^\/a/, "/%61"),
        ];
        for (const [what, key] of keyCases) {
          for (const spelled of spellings) {
            const answer = await send(s.url, r.method, spelled, { key, body: bodyFor(r, MODEL) });
            tally.count("auth_checks");
            // 401, or a 404 from no route at all (a spelling that names no route serves nothing).
            const refused =
              answer.status === 401 ||
              (spelled !== path && answer.status === 404 && /not_found|no route/i.test(answer.text));
            if (
              !tally.check(
                refused,
                () => `${r.id} as ${spelled} with ${what}: ${answer.status} ${answer.text.slice(0, 120)}`,
              )
            )
              tally.count("auth_bypasses");
          }
        }
      }
      tally.figures.auth_bypasses ??= 0;

      tally.phase("traversal");
      // What the client sent (the name as written in the JSON answer, the URL path as the server saw it) is echoed, not
      // exposed: taken out before looking for a server path.
      const pathExposed = (text: string, name: string, path: string) => {
        const echoes = [JSON.stringify(name).slice(1, -1), new URL(path, "http://localhost").pathname];
        const rest = echoes.reduce((t, echo) => (echo.length > 0 ? t.split(echo).join("") : t), text);
        return rest.includes(root) || rest.includes(inside) || /\/(etc|tmp)\//.test(rest);
      };
      for (const name of escapingNames(root)) {
        for (const r of routes.filter((r) => !NO_NAME.has(r.id) && (r.id in BODIES || takesPathName(r)))) {
          const attempts: Array<[string, unknown]> = takesPathName(r)
            ? [
                ...pathSpellings(name).map((spelled): [string, unknown] => [fill(r, spelled), bodyFor(r, MODEL)]),
                [fill(r, name.replaceAll("\u0000", "%00")), bodyFor(r, MODEL)],
              ]
            : [[r.path, bodyFor(r, name)]];
          for (const [path, body] of attempts) {
            const answer = await send(s.url, r.method, path, { body });
            tally.count("traversal_checks");
            // Warm-up answers 200 with each name it could not load under `failed`: refused too, when nothing loaded.
            const warmupRefused =
              r.id === "POST /v1/cache/warmup" &&
              answer.status === 200 &&
              /"loaded":\[\]/.test(answer.text) &&
              /"failed":\[\{/.test(answer.text);
            const refused = (answer.status >= 400 && answer.status < 500) || warmupRefused;
            if (
              !tally.check(
                refused || answer.status === 501,
                () => `${r.id} with ${JSON.stringify(name)} as ${path}: ${answer.status} ${answer.text.slice(0, 160)}`,
              )
            ) {
              tally.count(answer.status >= 500 ? "traversal_server_errors" : "traversal_not_refused");
            }
            if (
              !tally.check(
                !pathExposed(answer.text, name, path),
                () =>
                  `${r.id} with ${JSON.stringify(name)}: the answer shows a server path: ${answer.text.slice(0, 200)}`,
              )
            ) {
              tally.count("answers_showing_a_server_path");
            }
          }
        }
      }
      off();
      tally.set("path_escapes", escapes.length);
      tally.check(
        escapes.length === 0,
        () => `loads outside the models directory: ${[...new Set(escapes)].join(", ")}`,
      );
      for (const name of ["traversal_server_errors", "traversal_not_refused", "answers_showing_a_server_path"])
        tally.figures[name] ??= 0;

      tally.phase("file_modes");
      await send(s.url, "POST", "/v1/cache/save", { body: {} });
      const dirMode = (await stat(s.cacheDir)).mode & 0o777;
      const fileMode = (await stat(join(s.cacheDir, STATE_FILE_NAME))).mode & 0o777;
      tally.set("cache_dir_mode", dirMode.toString(8));
      tally.set("state_file_mode", fileMode.toString(8));
      tally.check(
        dirMode === 0o700 && fileMode === 0o600,
        () => `cache directory ${dirMode.toString(8)}, state file ${fileMode.toString(8)} (expected 700, 600)`,
      );
      // Last: on a server without list limits, an over-long list keeps it busy until it stops.
      tally.phase("limits");
      const big = await send(s.url, "POST", "/v1/chat/completions", {
        body: { model: MODEL, messages: [{ role: "user", content: "x".repeat(9 * 1024 * 1024) }] },
      });
      tally.set("body_over_limit_status", big.status);
      tally.check(big.status === 413, () => `a 9 MiB body: ${big.status} ${big.text.slice(0, 120)}`);
      // One item over each configured limit (the server.* keys; issue 14's defaults where this build has none).
      const server = s.runtime.config.server as unknown as Record<string, number | undefined>;
      const over = (key: string) => (server[key] ?? LIST_LIMIT_DEFAULTS[key] ?? 0) + 1;
      const items = (n: number) => Array.from({ length: n }, () => "a");
      const messages = (n: number) => items(n).map((content) => ({ role: "user", content }));
      const lists: Array<[string, string, number, unknown]> = [
        [
          "prompts",
          "/v1/completions",
          over("max_prompts"),
          { model: MODEL, prompt: items(over("max_prompts")), max_tokens: 1, temperature: 0 },
        ],
        [
          "messages",
          "/v1/chat/completions",
          over("max_messages"),
          { model: MODEL, messages: messages(over("max_messages")), max_tokens: 1 },
        ],
        [
          "embedding_inputs",
          "/v1/embeddings",
          over("max_embedding_inputs"),
          { model: MODEL, input: items(over("max_embedding_inputs")) },
        ],
        [
          "ollama_messages",
          "/api/chat",
          over("max_messages"),
          { model: MODEL, messages: messages(over("max_messages")), stream: false },
        ],
        [
          "ollama_embed_inputs",
          "/api/embed",
          over("max_embedding_inputs"),
          { model: MODEL, input: items(over("max_embedding_inputs")) },
        ],
      ];
      for (const [what, path, count, body] of lists) {
        const answer = await send(s.url, "POST", path, { body, timeoutMs: p.limitAnswerMs });
        tally.set(
          `${what}_over_limit`,
          `${count} items: ${answer.status || "no answer"} in ${Math.round(answer.ms)} ms`,
        );
        const atOnce = answer.ms <= p.limitAnswerMs;
        tally.check(
          answer.status === 400 && atOnce,
          () =>
            `${count} ${what} on ${path}: ${answer.status} in ${Math.round(answer.ms)} ms ${answer.text.slice(0, 160)} (expected a 400 naming the limit at once)`,
        );
      }
      tally.phase(null);
    });
  });
  return tally.result();
}

export const securityScenario: Scenario<SecurityParams> = {
  name: "security",
  title:
    "API key on every /v1, /api, /v2 route; traversal (encoded, symlinks) on every route taking a name; body and list limits; file modes",
  full: { limitAnswerMs: 3000 },
  bounded: { limitAnswerMs: 3000 },
  run: security,
};

/**
 * What a web page the user opens can do to a server on loopback (issue 23, item 2; Ollama's CVE-2024-28224). Every
 * route of the app (read from `server.app.app.routes`, so a new route is covered without an edit here) is sent, as a
 * browser would send it:
 *
 * - from a page of another site (`Origin: https://evil.example`), with a body a page sends without a preflight
 *   (`text/plain`): 403;
 * - through DNS rebinding (`Host: rebind.evil.example:PORT`, the page's own name): 403;
 * - without an Origin, with a `text/plain` body, on every route that takes one: 415.
 *
 * None may change anything: the statistics, the loaded models and the state file's save count stay as they were. A
 * listed origin (`server.allowed_origins`) gets its CORS answer and a loopback `Host` passes, so the guard is not just
 * refusing everything.
 */
import { request as httpRequest } from "node:http";
import type { CacheStats } from "../../src/cache/types.js";
import { type Scenario, Tally, withTempDir } from "../../testkit/scenario.js";
import { completion, withStressServer } from "../server.js";

export interface BrowserParams {
  /** Times each route is tried per way (more rounds: more chance to catch a race in the guard). */
  rounds: number;
}

const MODEL = "tiny.gguf";
const LISTED = "http://ui.example:3000";

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

function send(
  url: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Answer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const length = body === undefined ? {} : { "content-length": String(Buffer.byteLength(body)) };
    const req = httpRequest(
      { hostname, port, method, path, headers: { ...headers, ...length }, agent: false },
      (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** Every route as registered, with its name parameter filled in. */
function routesOf(app: { routes: Array<{ method: string; path: string }> }): Array<{ method: string; path: string }> {
  const seen = new Map<string, { method: string; path: string }>();
  for (const r of app.routes) {
    if (r.method === "ALL") continue;
    const path = r.path.replace(/:[a-z]+(\{[^}]*\})?/g, MODEL);
    seen.set(`${r.method} ${path}`, { method: r.method, path });
  }
  return [...seen.values()];
}

export const browserScenario: Scenario<BrowserParams> = {
  name: "browser",
  title: "cross-site requests, DNS rebinding and text/plain bodies on every route: refused, nothing changed",
  full: { rounds: 5 },
  bounded: { rounds: 1 },
  async run(params) {
    const tally = new Tally();
    await withTempDir("browser", async (root) => {
      const options = {
        root,
        models: [MODEL],
        settings: { "server.allowed_origins": [LISTED] },
      };
      await withStressServer(options, async (s) => {
        // One real request: statistics and a loaded model that a forged clear would erase.
        tally.check(
          (await s.post("/v1/completions", completion(MODEL))).status === 200,
          () => "the warm-up request failed",
        );
        const before = await s.getJson<CacheStats>("/v1/cache/stats");
        const port = new URL(s.url).port;
        const body = JSON.stringify({ stats: true, model: MODEL, prompt: "hi", messages: [], input: "hi" });
        const routes = routesOf(s.server.app.app);
        tally.set("routes", routes.length);
        tally.phase("refusals");
        for (let round = 0; round < params.rounds; round++) {
          for (const { method, path } of routes) {
            const id = `${method} ${path}`;
            const hasBody = method !== "GET" && method !== "HEAD";
            const plain: Record<string, string> = hasBody ? { "content-type": "text/plain" } : {};
            const crossSite = await send(
              s.url,
              method,
              path,
              { origin: "https://evil.example", ...plain },
              hasBody ? body : undefined,
            );
            tally.count("origin_checks");
            tally.check(crossSite.status === 403, () => `${id} from another site's page answered ${crossSite.status}`);
            tally.check(
              crossSite.headers["access-control-allow-origin"] === undefined,
              () => `${id} gave another site CORS headers`,
            );
            const rebound = await send(
              s.url,
              method,
              path,
              { host: `rebind.evil.example:${port}`, ...plain },
              hasBody ? body : undefined,
            );
            tally.count("host_checks");
            tally.check(rebound.status === 403, () => `${id} with a rebound Host answered ${rebound.status}`);
            if (hasBody) {
              const textPlain = await send(s.url, method, path, plain, body);
              tally.count("content_type_checks");
              tally.check(textPlain.status === 415, () => `${id} took a text/plain body (${textPlain.status})`);
            }
          }
        }
        tally.phase("nothing changed");
        const after = await s.getJson<CacheStats>("/v1/cache/stats");
        tally.check(
          after.misses === before.misses && after.hits === before.hits,
          () => "a refused request was counted",
        );
        tally.check(after.models_loaded === before.models_loaded, () => "a refused request unloaded a model");
        tally.check(after.models.length === before.models.length, () => "a refused request erased statistics");

        tally.phase("allowed");
        const listed = await send(s.url, "GET", "/v1/models", { origin: LISTED });
        tally.check(
          listed.status === 200 && listed.headers["access-control-allow-origin"] === LISTED,
          () => `a listed origin was not answered with CORS (${listed.status})`,
        );
        const loopback = await send(s.url, "GET", "/health", { host: `localhost:${port}` });
        tally.check(loopback.status === 200, () => `Host: localhost answered ${loopback.status}`);
        tally.phase(null);
      });
    });
    return tally.result();
  },
};

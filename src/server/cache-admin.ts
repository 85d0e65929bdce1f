/** The cache administration routes of SPEC.md: statistics, loaded models, save, clear, warm-up, load and unload. */
import { Hono } from "hono";
import { type AppDeps, type AppEnv, readJson } from "./context.js";
import { clampKeepAlive } from "./keep-alive.js";
import { clearRequestSchema, loadRequestSchema, parseBody, warmupRequestSchema } from "./schemas.js";

export function cacheAdminRoutes(deps: AppDeps): Hono<AppEnv> {
  const { cache } = deps.runtime;
  const routes = new Hono<AppEnv>();

  routes.get("/v1/cache/stats", (c) => c.json(cache.stats()));

  routes.get("/v1/cache/models", (c) => c.json({ object: "list", data: cache.loadedModels() }));

  routes.post("/v1/cache/save", async (c) => c.json(await cache.saveCache()));

  routes.post("/v1/cache/clear", async (c) => {
    const body = parseBody(clearRequestSchema, await readJson(c));
    const unloaded = await cache.clear(body);
    return c.json({ unloaded });
  });

  routes.post("/v1/cache/warmup", async (c) => {
    const body = parseBody(warmupRequestSchema, await readJson(c));
    return c.json(await cache.warmup(body));
  });

  routes.post("/v1/cache/models/:name{.+}/load", async (c) => {
    const body = parseBody(loadRequestSchema, await readJson(c));
    const keepAliveSeconds =
      body.keep_alive === undefined ? undefined : clampKeepAlive(body.keep_alive, deps.runtime.config.server);
    return c.json(await cache.load(c.req.param("name"), { keepAliveSeconds, signal: c.req.raw.signal }));
  });

  routes.delete("/v1/cache/models/:name{.+}", async (c) => {
    const name = c.req.param("name");
    const unloaded = await cache.evict(name);
    return c.json({ name, unloaded });
  });

  return routes;
}

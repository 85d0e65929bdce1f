/** The cache administration routes of SPEC.md: statistics, loaded models, save, clear, warm-up, load and unload. */
import { Hono } from "hono";
import { BadRequest } from "../errors/index.js";
import { type AppDeps, type AppEnv, readBody } from "./context.js";
import { parseLastEventId } from "./events.js";
import { requestKeepAlive } from "./keep-alive.js";
import { clearRequestSchema, loadRequestSchema, warmupRequestSchema } from "./schemas.js";

/** `?force=true` (also `1`, or the bare `?force`); anything else but `false`/`0` is refused by name. */
function parseForce(value: string | undefined): boolean {
  if (value === undefined || value === "false" || value === "0") return false;
  if (value === "" || value === "true" || value === "1") return true;
  throw new BadRequest(`force must be true or false, found ${JSON.stringify(value)}`, { details: { param: "force" } });
}

/** `?target_hit_rate=R` for a fleet's advice: a number above 0, at most 1. */
export function parseTargetHitRate(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const rate = Number(value);
  if (value.trim() === "" || !Number.isFinite(rate) || rate <= 0 || rate > 1) {
    throw new BadRequest(`target_hit_rate must be a number above 0 and at most 1, found ${JSON.stringify(value)}`, {
      details: { param: "target_hit_rate" },
    });
  }
  return rate;
}

export function cacheAdminRoutes(deps: AppDeps): Hono<AppEnv> {
  const { cache } = deps.runtime;
  const routes = new Hono<AppEnv>();

  routes.get("/v1/cache/stats", async (c) => {
    const stats = cache.stats();
    // A failed save's message is told as any error sent to a client is (no server path; `state_file` names the file).
    const { error } = stats.last_save;
    const node = error ? { ...stats, last_save: { ...stats.last_save, error: deps.paths.message(error) } } : stats;
    // In a fleet: the fleet's figures beside the node's.
    const fleet = deps.runtime.fleet;
    return c.json(fleet ? { ...node, fleet: await fleet.stats() } : node);
  });

  // Server-sent events (see events.ts); ends when the client leaves or the server starts shutting down.
  routes.get("/v1/cache/events", (c) => {
    const lastId = parseLastEventId(c.req.header("last-event-id") ?? c.req.query("lastEventId"));
    const signal = AbortSignal.any([c.req.raw.signal, deps.lifecycle.drainingSignal]);
    return new Response(deps.events.stream(lastId, signal), {
      headers: {
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
      },
    });
  });

  // A replay of the request log under other settings (seconds of solver work, on a worker thread).
  routes.get("/v1/cache/advise", async (c) => {
    const target = parseTargetHitRate(c.req.query("target_hit_rate"));
    return c.json(await deps.runtime.advise(target === undefined ? {} : { targetHitRate: target }));
  });

  routes.get("/v1/cache/models", (c) => c.json({ object: "list", data: cache.loadedModels() }));

  routes.post("/v1/cache/save", async (c) => {
    const saved = await cache.saveCache();
    return c.json(saved.error ? { ...saved, error: deps.paths.message(saved.error) } : saved);
  });

  routes.post("/v1/cache/clear", async (c) => {
    const body = await readBody(c, clearRequestSchema);
    const unloaded = await cache.clear(body);
    return c.json({ unloaded });
  });

  routes.post("/v1/cache/warmup", async (c) => {
    const body = await readBody(c, warmupRequestSchema);
    const result = await cache.warmup(body);
    // Each model that failed carries its error's message: told as any error sent to a client is (no server path).
    return c.json({
      ...result,
      failed: result.failed.map((f) => ({ name: f.name, error: deps.paths.message(f.error, f.cause) })),
    });
  });

  routes.post("/v1/cache/models/:name{.+}/load", async (c) => {
    const body = await readBody(c, loadRequestSchema);
    const keepAlive = requestKeepAlive(body.keep_alive, deps.runtime.config.server);
    return c.json(await cache.load(c.req.param("name"), { keepAlive, signal: c.req.raw.signal }));
  });

  routes.delete("/v1/cache/models/:name{.+}", async (c) => {
    const name = c.req.param("name");
    const force = parseForce(c.req.query("force"));
    const unloaded = await cache.evict(name, { force });
    return c.json({ name, unloaded });
  });

  return routes;
}

/** `GET /health` (liveness and a one-line summary) and `GET /metrics` (Prometheus text). Neither needs the API key. */
import { Hono } from "hono";
import type { AppDeps, AppEnv } from "./context.js";

export function healthRoutes(deps: AppDeps): Hono<AppEnv> {
  const routes = new Hono<AppEnv>();

  routes.get("/health", (c) => {
    const summary = deps.runtime.cache.summary();
    const body = {
      status: deps.lifecycle.isDraining ? "shutting_down" : "ok",
      version: deps.version,
      uptime_seconds: Math.round((Date.now() - deps.startedAt) / 1000),
      models_loaded: summary.models_loaded,
      warmup: deps.warmup.state,
      requests_running: deps.queue.runningCount,
      requests_waiting: deps.queue.waitingCount,
    };
    return c.json(body, deps.lifecycle.isDraining ? 503 : 200);
  });

  routes.get("/metrics", async (c) => {
    const { registry } = deps.metrics;
    return c.body(await registry.metrics(), 200, { "Content-Type": registry.contentType });
  });

  return routes;
}

/**
 * `GET /health` (liveness and a one-line summary), `GET /ready` (readiness: 503 until the start-up warm-up has ended,
 * for load balancers and orchestrators) and `GET /metrics` (Prometheus text). None needs the API key.
 */
import { Hono } from "hono";
import type { AppDeps, AppEnv } from "./context.js";

/**
 * `warming` until the start-up warm-up ends (in a fleet: and this node's part of the fleet's warm-up is loaded),
 * `shutting_down` once draining begins (in a fleet: once the node drains its models elsewhere), else `ok`.
 */
function status(deps: AppDeps): "ok" | "warming" | "shutting_down" {
  // A node of a fleet listens before it joins: until then it has no part yet, so it is still warming.
  const joining = !deps.runtime.fleet && deps.runtime.config.fleet.redis_url !== "";
  const fleet = joining ? "waiting" : deps.runtime.fleet?.readiness().state;
  if (deps.lifecycle.isDraining || fleet === "draining") return "shutting_down";
  return deps.warmup.state === "running" || fleet === "waiting" || fleet === "loading" ? "warming" : "ok";
}

/** The start-up warm-up's plan and progress while it runs (null once it is over or before it has a plan). */
function warmupProgress(deps: AppDeps): { plan: string[]; settled: number; total: number; loaded: string[] } | null {
  if (deps.warmup.state !== "running") return null;
  const progress = deps.runtime.cache.startupWarmupProgress();
  return progress ? { ...progress, total: progress.plan.length } : null;
}

export function healthRoutes(deps: AppDeps): Hono<AppEnv> {
  const routes = new Hono<AppEnv>();

  routes.get("/health", (c) => {
    const summary = deps.runtime.cache.summary();
    const body = {
      status: status(deps),
      version: deps.version,
      uptime_seconds: Math.round((Date.now() - deps.startedAt) / 1000),
      models_loaded: summary.models_loaded,
      warmup: deps.warmup.state,
      warmup_progress: warmupProgress(deps),
      requests_running: deps.queue.runningCount,
      requests_waiting: deps.queue.waitingCount,
      // Only in a fleet: `degraded` while Redis cannot be reached and the node serves alone.
      ...(deps.runtime.fleet ? { fleet: deps.runtime.fleet.status() } : {}),
    };
    return c.json(body, deps.lifecycle.isDraining ? 503 : 200);
  });

  // Ready once the start-up warm-up has ended (done or failed: a failed warm-up leaves a working, colder server).
  routes.get("/ready", (c) => {
    const state = status(deps);
    const ready = state === "ok";
    const fleet = deps.runtime.fleet ? { fleet_warmup: deps.runtime.fleet.readiness() } : {};
    return c.json({ ready, status: state, warmup_progress: warmupProgress(deps), ...fleet }, ready ? 200 : 503);
  });

  routes.get("/metrics", async (c) => {
    const { registry } = deps.metrics;
    // In a fleet every series carries the node's id, so one Prometheus scraping every node tells them apart.
    if (deps.runtime.fleet) registry.setDefaultLabels({ node: deps.runtime.fleet.nodeId });
    return c.body(await registry.metrics(), 200, { "Content-Type": registry.contentType });
  });

  return routes;
}

/**
 * `GET /health` (liveness and a one-line summary), `GET /ready` (readiness: 503 until the start-up warm-up has ended,
 * for load balancers and orchestrators) and `GET /metrics` (Prometheus text). None needs the API key.
 */
import { Hono } from "hono";
import type { AppDeps, AppEnv } from "./context.js";

/** `warming` until the start-up warm-up ends, `shutting_down` once draining begins, else `ok`. */
function status(deps: AppDeps): "ok" | "warming" | "shutting_down" {
  if (deps.lifecycle.isDraining) return "shutting_down";
  return deps.warmup.state === "running" ? "warming" : "ok";
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
    return c.json({ ready, status: state, warmup_progress: warmupProgress(deps) }, ready ? 200 : 503);
  });

  routes.get("/metrics", async (c) => {
    const { registry } = deps.metrics;
    return c.body(await registry.metrics(), 200, { "Content-Type": registry.contentType });
  });

  return routes;
}

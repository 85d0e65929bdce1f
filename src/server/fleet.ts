/**
 * Fleet routing (docs/fleet.md): a model request for a model another node holds is forwarded there over HTTP, with the
 * fleet secret (never the client's key) and a hop count; the answer — status, `Retry-After`, a stream — passes through
 * unchanged, and a client that goes away closes the forward, which ends the generation on the holder. Where a request
 * goes is the runtime's `FleetPort.route` (no Redis round trip when the node's mirror knows a holder).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Hono, type MiddlewareHandler } from "hono";
import { RouteNotFound, Unauthorized } from "../errors/index.js";
import { type AppDeps, type AppEnv, readJson, requestSignal } from "./context.js";
import { FLEET_HOP_HEADER, FLEET_SECRET_HEADER } from "./ports.js";

// The headers live with the ports, where the runtime's drain (which asks peers to load) reads them too.
export { FLEET_HOP_HEADER, FLEET_SECRET_HEADER } from "./ports.js";

/** The routes that name a model in their body: the ones a node forwards. */
export const MODEL_ROUTES = new Set([
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
  "/v1/responses",
  "/api/chat",
  "/api/generate",
  "/api/embed",
  "/api/embeddings",
]);

/** Response headers that belong to one connection, not to the answer. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "content-encoding", "content-length"]);

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/**
 * Marks a request forwarded by a peer (`fleetHops` > 0) once its secret checks out; a forward without the secret is
 * refused. Runs before the API key check, which a peer's forward skips (it carries the fleet secret instead).
 */
export function fleetPeerAuth(deps: AppDeps): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const { config } = deps.runtime;
    const hopHeader = c.req.header(FLEET_HOP_HEADER);
    // A node that has not joined yet (it listens first) may already get forwards: its record reached the fleet.
    if ((!deps.runtime.fleet && config.fleet.redis_url === "") || hopHeader === undefined) return next();
    const hops = Number(hopHeader);
    if (!Number.isInteger(hops) || hops < 1) throw new Unauthorized(`${FLEET_HOP_HEADER} must be a positive integer`);
    const secret = deps.runtime.fleet?.secret ?? config.fleet.secret ?? config.server.api_key;
    if (secret !== "") {
      const given = c.req.header(FLEET_SECRET_HEADER);
      if (given === undefined || !timingSafeEqual(sha256(given), sha256(secret))) {
        throw new Unauthorized("a forwarded fleet request needs the fleet secret (fleet.secret, or server.api_key)");
      }
    }
    c.set("fleetHops", hops);
    await next();
  };
}

/** Forwards a model request to the node that holds (or is to load) its model; serves it here otherwise. */
export function fleetRouting(deps: AppDeps): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const fleet = deps.runtime.fleet;
    if (!fleet || c.req.method !== "POST" || !MODEL_ROUTES.has(c.req.path)) return next();
    const body = await readJson(c);
    const model = (body as { model?: unknown } | null)?.model;
    if (typeof model !== "string" || model === "") return next();
    const hops = c.get("fleetHops") ?? 0;
    const failed = new Set<string>();
    for (;;) {
      const route = await fleet.route(model, hops, failed);
      if (route.kind === "local") return next();
      const forwarded = await forward(c, deps, route.url, hops + 1, fleet.secret);
      if (forwarded) return forwarded;
      // The peer failed before its first byte: the next copy, or a load.
      failed.add(route.node);
    }
  };
}

/** Whether a peer's 503 is its `shutting_down` refusal (read from a clone: any other 503 passes through as it is). */
async function refusedForShutdown(response: Response): Promise<boolean> {
  try {
    const body = (await response.clone().json()) as { error?: { code?: unknown } };
    return body.error?.code === "shutting_down"; // ShuttingDown's code
  } catch {
    return false;
  }
}

/**
 * The peer's answer, passed through; null when the peer could not be reached or refused for its shutdown (nothing was
 * sent to the client).
 */
async function forward(
  c: Parameters<MiddlewareHandler<AppEnv>>[0],
  deps: AppDeps,
  base: string,
  hops: number,
  secret: string,
): Promise<Response | null> {
  const headers: Record<string, string> = {
    "content-type": c.req.header("content-type") ?? "application/json",
    [FLEET_HOP_HEADER]: String(hops),
  };
  if (secret !== "") headers[FLEET_SECRET_HEADER] = secret;
  const accept = c.req.header("accept");
  if (accept !== undefined) headers.accept = accept;
  const url = new URL(c.req.url);
  const signal = requestSignal(c, deps.lifecycle);
  let upstream: Response;
  try {
    upstream = await fetch(`${base}${url.pathname}${url.search}`, {
      method: "POST",
      headers,
      body: await c.req.text(),
      signal,
    });
  } catch (error) {
    if (signal.aborted) throw error;
    deps.runtime.logger.warn({ peer: base }, `fleet: forwarding to ${base} failed: ${(error as Error).message}`);
    return null;
  }
  // A peer that stopped taking requests (it is shutting down, its models moved on) answered nothing yet: the next copy.
  if (upstream.status === 503 && (await refusedForShutdown(upstream))) {
    deps.runtime.logger.info({ peer: base }, `fleet: ${base} is shutting down; trying the next copy`);
    return null;
  }
  const out = new Headers();
  upstream.headers.forEach((value, name) => {
    if (!HOP_BY_HOP.has(name)) out.set(name, value);
  });
  if (!upstream.body) return new Response(null, { status: upstream.status, headers: out });
  // In flight (for shutdown and the request log) until the last byte passed or the client left.
  let done!: () => void;
  c.set("streamDone", new Promise<void>((resolve) => (done = resolve)));
  signal.addEventListener("abort", () => done(), { once: true });
  const body = upstream.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      flush: () => done(),
    }),
  );
  return new Response(body, { status: upstream.status, headers: out });
}

/**
 * `GET /v1/fleet`: the whole fleet as Redis holds it now — nodes, health, memory, models and copies, usage, the warm-up
 * plan and its progress (`inferno fleet status` prints it). Behind `server.api_key` like the other admin routes.
 */
export function fleetRoutes(deps: AppDeps): Hono<AppEnv> {
  const routes = new Hono<AppEnv>();
  routes.get("/v1/fleet", async (c) => {
    const fleet = deps.runtime.fleet;
    if (!fleet) throw new RouteNotFound("this server is not in a fleet (fleet.redis_url is empty)");
    return c.json(await fleet.view());
  });
  return routes;
}

/**
 * Fleet routing (docs/fleet.md): a model request for a model another node holds is forwarded there over HTTP, with the
 * fleet secret (never the client's key) and a hop count; the answer — status, `Retry-After`, a stream — passes through
 * unchanged, and a client that goes away closes the forward, which ends the generation on the holder. Where a request
 * goes is the runtime's `FleetPort.route` (no Redis round trip when the node's mirror knows a holder).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Agent as HttpAgent, type IncomingMessage, type OutgoingHttpHeaders, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { pipeline, Readable } from "node:stream";
import { Hono, type MiddlewareHandler } from "hono";
import { RouteNotFound, Unauthorized } from "../errors/index.js";
import {
  type AppDeps,
  type AppEnv,
  corsHeaders,
  nodeResponse,
  readJson,
  requestHeader,
  requestPath,
  RESPONSE_ALREADY_SENT,
  requestSignal,
} from "./context.js";
import { FLEET_HOP_HEADER, FLEET_SECRET_HEADER, type FleetPort } from "./ports.js";

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
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding"]);
/** And those a web `Response` sets itself: its body is the decoded bytes, framed anew. */
const WEB_FRAMING = new Set([...HOP_BY_HOP, "content-encoding", "content-length"]);

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
    const hopHeader = requestHeader(c, FLEET_HOP_HEADER);
    // A node that has not joined yet (it listens first) may already get forwards: its record reached the fleet.
    if ((!deps.runtime.fleet && config.fleet.redis_url === "") || hopHeader === undefined) return next();
    const hops = Number(hopHeader);
    if (!Number.isInteger(hops) || hops < 1) throw new Unauthorized(`${FLEET_HOP_HEADER} must be a positive integer`);
    const secret = deps.runtime.fleet?.secret ?? config.fleet.secret ?? config.server.api_key;
    if (secret !== "") {
      const given = requestHeader(c, FLEET_SECRET_HEADER);
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
  const watch = new HolderWatch((node) => deps.runtime.fleet?.alive(node) ?? true);
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
      const forwarded = await forward(c, deps, route, hops + 1, fleet, watch);
      if (forwarded) return forwarded;
      // The peer failed before its first byte: the next copy, or a load.
      failed.add(route.node);
    }
  };
}

/** How often the forwards waiting for their first byte check that their holders still heartbeat. */
const HOLDER_CHECK_MS = 250;

/**
 * The forwards waiting for their holder's first byte, checked together: one timer for all of them (a timer per forward
 * was a measurable part of its CPU), which stops at a check that finds none waiting.
 */
class HolderWatch {
  private readonly waiting = new Map<AbortController, string>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly alive: (node: string) => boolean) {}

  /** Aborts `stop` with `HolderGone` once `node` stops heartbeating, until the returned function is called. */
  add(stop: AbortController, node: string): () => void {
    this.waiting.set(stop, node);
    if (this.timer === null) {
      this.timer = setInterval(() => this.check(), HOLDER_CHECK_MS);
      this.timer.unref();
    }
    return () => void this.waiting.delete(stop);
  }

  private check(): void {
    if (this.waiting.size === 0) {
      clearInterval(this.timer ?? undefined);
      this.timer = null;
      return;
    }
    for (const [stop, node] of this.waiting) {
      if (!this.alive(node)) stop.abort(new HolderGone(`${node} stopped heartbeating before its first byte`));
    }
  }
}

/** Whether a peer's 503 body is its `shutting_down` refusal (any other 503 passes through as it is). */
function refusedForShutdown(body: Buffer): boolean {
  try {
    const parsed = JSON.parse(body.toString("utf8")) as { error?: { code?: unknown } };
    return parsed.error?.code === "shutting_down"; // ShuttingDown's code
  } catch {
    return false;
  }
}

/**
 * The peer's answer, passed through; null when the peer could not be reached, refused for its shutdown, or stopped
 * heartbeating before its first byte (nothing was sent to the client). The wait for the first byte has no fixed limit
 * (it may include a load and, for an answer that is not streamed, the whole generation): its limit is the holder's
 * lease, so a holder that hangs (stopped, swapping, partitioned) is given up once its lease ends and the request goes
 * to the next copy or a load.
 */
async function forward(
  c: Parameters<MiddlewareHandler<AppEnv>>[0],
  deps: AppDeps,
  route: { node: string; url: string },
  hops: number,
  fleet: FleetPort,
  watch: HolderWatch,
): Promise<Response | null> {
  const { url: base, node } = route;
  const body = await c.req.text();
  const headers: OutgoingHttpHeaders = {
    "content-type": requestHeader(c, "content-type") ?? "application/json",
    "content-length": Buffer.byteLength(body),
    [FLEET_HOP_HEADER]: String(hops),
  };
  if (fleet.secret !== "") headers[FLEET_SECRET_HEADER] = fleet.secret;
  const accept = requestHeader(c, "accept");
  if (accept !== undefined) headers.accept = accept;
  // One controller for the forward: the client gone (or the shutdown's grace over), and the holder's heartbeat watch.
  const stop = new AbortController();
  const signal = requestSignal(c, deps.lifecycle, stop);
  const unwatch = watch.add(stop, node);
  let upstream: IncomingMessage;
  try {
    upstream = await post(peerTarget(base, requestPath(c)), headers, body, signal);
  } catch (error) {
    const holderGone = signal.reason instanceof HolderGone;
    if (signal.aborted && !holderGone) throw error;
    const reason = holderGone ? (signal.reason as HolderGone) : (error as Error);
    // Once per peer until it heartbeats again: the requests meanwhile skip it (a killed node's lease runs on).
    if (fleet.unreachable(node)) {
      deps.runtime.logger.warn(
        { peer: base },
        `fleet: forwarding to ${base} failed: ${reason.message}; skipping it until it heartbeats again`,
      );
    }
    return null;
  } finally {
    unwatch();
  }
  const status = upstream.statusCode ?? 502;
  if (status === 503) {
    // A peer that stopped taking requests (it is shutting down, its models moved on) answered nothing yet: the next
    // copy. Any other 503 (a full queue, with its Retry-After) passes through.
    const chunks: Buffer[] = [];
    for await (const chunk of upstream) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    if (refusedForShutdown(body)) {
      deps.runtime.logger.info({ peer: base }, `fleet: ${base} is shutting down; trying the next copy`);
      return null;
    }
    return new Response(body, { status, headers: webHeaders(upstream) });
  }
  // In flight (for shutdown and the request log) until the last byte passed or the client left (`close` follows both).
  c.set("streamDone", new Promise<void>((resolve) => upstream.once("close", resolve)));
  const outgoing = nodeResponse(c);
  if (outgoing === undefined) {
    if (status === 204 || status === 304) {
      upstream.resume();
      return new Response(null, { status, headers: webHeaders(upstream) });
    }
    return new Response(Readable.toWeb(upstream) as ReadableStream<Uint8Array>, {
      status,
      headers: webHeaders(upstream),
    });
  }
  // Under Node the answer's bytes are piped to the client as they come, framing (Content-Length) and all: no web
  // stream between, and the headers leave with the first bytes of the body. A holder that fails after its first byte
  // ends the client's connection too, as a local failure mid-answer does; a client that leaves closes the forward.
  const passed: OutgoingHttpHeaders = { ...corsHeaders(c) };
  for (const [name, value] of Object.entries(upstream.headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) passed[name] = value;
  }
  outgoing.writeHead(status, passed);
  // What already arrived leaves now, with the headers; a short answer (not streamed) is whole by the time this runs.
  const arrived = upstream.read() as Buffer | null;
  if (upstream.complete && upstream.readableLength === 0) outgoing.end(arrived ?? undefined);
  else {
    if (arrived !== null) outgoing.write(arrived);
    pipeline(upstream, outgoing, () => {});
  }
  return RESPONSE_ALREADY_SENT;
}

/** The holder stopped heartbeating while a forward waited for its first byte. */
class HolderGone extends Error {}

/** A peer's answer headers for a web `Response`. */
function webHeaders(upstream: IncomingMessage): Headers {
  const out = new Headers();
  for (const [name, value] of Object.entries(upstream.headers)) {
    if (WEB_FRAMING.has(name) || value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) out.append(name, one);
  }
  return out;
}

/**
 * Keep-alive connections to the peers. Node's own client rather than `fetch`: about a millisecond less per request,
 * which a forwarded short generation would otherwise pay (bench/server.ts measured the same for the bench's client).
 */
const AGENTS = { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) };

/** Where a request to a peer goes: its advertised URL taken apart once, the path appended per request. */
export interface PeerTarget {
  https: boolean;
  hostname: string;
  port: string;
  /** `user:password` from the URL, as Node's own URL handling passes it on (Basic authentication); null without. */
  auth: string | null;
  path: string;
}

/** A peer's advertised URL taken apart: what every request to it shares. */
interface Peer extends Omit<PeerTarget, "path"> {
  /** The URL's own path, in front of each request's (empty for `http://host:port`). */
  prefix: string;
}

/** Peers' advertised URLs, parsed (a URL parse per forward was a measurable part of its CPU). */
const PEERS = new Map<string, Peer>();
/** More distinct peer URLs than this (a fleet of changing addresses) and the parsed ones are dropped and parsed again. */
const PEERS_KEPT = 1000;

/** `base` (a peer's advertise URL) with `path` appended, as `new URL(base + path)` would take it apart. */
export function peerTarget(base: string, path: string): PeerTarget {
  let peer = PEERS.get(base);
  if (!peer) {
    const url = new URL(base);
    peer = {
      https: url.protocol === "https:",
      // An IPv6 literal without its brackets, as Node's own URL handling passes it on.
      hostname: url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname,
      port: url.port,
      auth:
        url.username === "" && url.password === ""
          ? null
          : `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`,
      prefix: url.pathname === "/" && !base.endsWith("/") ? "" : url.pathname,
    };
    if (PEERS.size >= PEERS_KEPT) PEERS.clear();
    PEERS.set(base, peer);
  }
  const { prefix, ...target } = peer;
  return { ...target, path: `${prefix}${path}` };
}

/**
 * POSTs `body` and resolves with the answer once its status and headers arrived (its body still streaming). `signal`
 * aborting destroys the request, before or after the answer started, which closes the connection: the peer sees its
 * client leave.
 */
function post(
  target: PeerTarget,
  headers: OutgoingHttpHeaders,
  body: string,
  signal: AbortSignal,
  retry = true,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const request = (target.https ? httpsRequest : httpRequest)(
      {
        hostname: target.hostname,
        port: target.port,
        path: target.path,
        ...(target.auth === null ? {} : { auth: target.auth }),
        method: "POST",
        headers,
        agent: target.https ? AGENTS.https : AGENTS.http,
      },
      resolve,
    );
    // Node's `signal` option watches the request's end with a stream finisher of its own: a plain listener costs less.
    const abort = () => request.destroy(signal.reason as Error);
    if (signal.aborted) abort();
    else signal.addEventListener("abort", abort, { once: true });
    request.once("close", () => signal.removeEventListener("abort", abort));
    request.once("error", (error: NodeJS.ErrnoException) => {
      // The peer closed an idle kept-alive connection just as it was reused (Node's documented race): nothing reached
      // the peer, so the request goes once more on a fresh connection rather than counting as the peer's failure.
      if (retry && request.reusedSocket && error.code === "ECONNRESET" && !signal.aborted) {
        post(target, headers, body, signal, false).then(resolve, reject);
      } else reject(error);
    });
    request.end(body);
  });
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

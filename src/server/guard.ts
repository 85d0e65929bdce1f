/**
 * Browser safety: what keeps a web page the user opens from using the server (Ollama's CVE-2024-28224 and its answer,
 * a host allow-list and `OLLAMA_ORIGINS`). A browser lets any page send requests to `127.0.0.1` — without reading the
 * answer unless CORS allows it, but a POST that clears the cache needs no answer — and a page on a name whose DNS
 * answer turns to `127.0.0.1` (DNS rebinding) is even same-origin with the server. Three checks, before anything else
 * runs:
 *
 * - `Host`: a loopback or private name (`localhost`, `*.localhost`, `*.local`, `*.internal`), an IP address, this machine's host name, `server.host`, or
 *   listed in `server.allowed_hosts`; anything else is a name someone else's DNS chose (403).
 * - `Origin` (sent by browsers with every cross-origin request and every POST): absent (not a browser), the server's
 *   own (its status page), or listed in `server.allowed_origins`; anything else is a page of another site (403). Only
 *   listed origins get CORS headers, and preflights (`OPTIONS`) are answered only for them.
 * - A request body on any route must be JSON (`application/json` or `…+json`): `text/plain`, forms and bodies without
 *   a type are what a page can send without a preflight (415).
 */
import { isIP } from "node:net";
import { hostname } from "node:os";
import type { MiddlewareHandler } from "hono";
import type { ServerConfig } from "../config/schema.js";
import { Forbidden, UnsupportedMediaType } from "../errors/index.js";
import { type AppContext, type AppEnv, nodeRequestHeaders } from "./context.js";

/** Methods and headers a listed origin's preflight is granted. */
const CORS_METHODS = "GET, POST, DELETE, OPTIONS";
const CORS_HEADERS = "Authorization, Content-Type, Last-Event-ID, OpenAI-Organization, OpenAI-Project, X-Stainless-*";
/**
 * Names no public DNS answers for, so no web page can rebind them (as Ollama's list): `*.localhost`, `*.local` (mDNS),
 * `*.internal` (`host.docker.internal`, a container reaching the server on its host).
 */
const PRIVATE_SUFFIXES = [".localhost", ".local", ".internal"];
/** Longest header value quoted back in a refusal. */
const QUOTE_CHARS = 200;

/** A host name without port, brackets, trailing dot or case: `[::1]:8080` → `::1`, `Example.COM.:80` → `example.com`. */
export function hostName(header: string): string {
  const text = header.trim().toLowerCase();
  const name = text.startsWith("[") ? text.slice(1, text.indexOf("]")) : text.replace(/:\d*$/, "");
  return name.replace(/\.$/, "");
}

/** A pattern of `allowed_hosts` or `allowed_origins` (`*` matches any run of characters) as a test. */
function matcher(patterns: readonly string[], normalize: (text: string) => string): (value: string) => boolean {
  const exact = new Set<string>();
  const globs: RegExp[] = [];
  for (const pattern of patterns.map(normalize)) {
    if (!pattern.includes("*")) exact.add(pattern);
    else globs.push(new RegExp(`^${pattern.split("*").map(escapeRegExp).join(".*")}$`));
  }
  return (value) => exact.has(value) || globs.some((glob) => glob.test(value));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** An origin as compared: lower case, no trailing slash. */
function normalizeOrigin(origin: string): string {
  return origin.trim().toLowerCase().replace(/\/+$/, "");
}

/** `scheme://host:port` of an origin, with the scheme's default port spelt out, or null when it is no URL. */
function originHost(origin: string): string | null {
  try {
    const url = new URL(origin);
    return `${url.hostname}:${url.port || (url.protocol === "https:" ? "443" : "80")}`;
  } catch {
    return null;
  }
}

/** The Host header as `host:port` (port 80 when it names none), comparable with `originHost`. */
function requestHost(header: string): string | null {
  try {
    const url = new URL(`http://${header}`);
    return `${url.hostname}:${url.port || "80"}`;
  } catch {
    return null;
  }
}

function quote(value: string): string {
  return JSON.stringify(value.length > QUOTE_CHARS ? `${value.slice(0, QUOTE_CHARS)}…` : value);
}

function isJson(contentType: string): boolean {
  const type = (contentType.split(";")[0] ?? "").trim().toLowerCase();
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

export type GuardConfig = Pick<ServerConfig, "host" | "allowed_hosts" | "allowed_origins">;

/** The middleware: see the file's comment. */
export function browserGuard(server: GuardConfig): MiddlewareHandler<AppEnv> {
  const ownNames = new Set([hostName(server.host), hostName(hostname())]);
  const hostListed = matcher(server.allowed_hosts, hostName);
  const originListed = matcher(server.allowed_origins, normalizeOrigin);
  const hostAllowed = (name: string) =>
    name === "localhost" ||
    PRIVATE_SUFFIXES.some((suffix) => name.endsWith(suffix)) ||
    isIP(name) !== 0 ||
    ownNames.has(name) ||
    hostListed(name);

  return async (c, next) => {
    const headers = nodeRequestHeaders(c);
    const header = (name: string) => (headers ? (headers[name] as string | undefined) : c.req.header(name));
    const host = header("host");
    // HTTP/1.0 clients may send no Host; every browser sends one.
    if (host !== undefined && !hostAllowed(hostName(host))) {
      throw new Forbidden(
        `this server does not answer to the host ${quote(host)}: add its name to server.allowed_hosts to reach it by that name`,
        { details: { header: "host", allowed_hosts: server.allowed_hosts } },
      );
    }
    const origin = header("origin");
    const listed = origin !== undefined && originListed(normalizeOrigin(origin));
    if (origin !== undefined && !listed && !sameOrigin(origin, host)) {
      throw new Forbidden(
        `requests from web pages of ${quote(origin)} are refused: add the origin to server.allowed_origins to let that page use this server`,
        { details: { header: "origin", allowed_origins: server.allowed_origins } },
      );
    }
    if (listed) {
      c.header("Access-Control-Allow-Origin", origin);
      c.header("Vary", "Origin");
      if (c.req.method === "OPTIONS" && header("access-control-request-method") !== undefined) {
        return preflight(c, header("access-control-request-headers"));
      }
    }
    if (hasBody(header) && !isJson(header("content-type") ?? "")) {
      const type = header("content-type");
      throw new UnsupportedMediaType(
        `request bodies must be JSON, sent with the header \`Content-Type: application/json\`; this one was ${type === undefined ? "sent without a type" : quote(type)}`,
        { details: { content_type: type ?? null } },
      );
    }
    await next();
  };
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  const from = originHost(origin);
  return from !== null && from === requestHost(host);
}

function hasBody(header: (name: string) => string | undefined): boolean {
  const length = header("content-length");
  return header("transfer-encoding") !== undefined || (length !== undefined && Number(length) > 0);
}

function preflight(c: AppContext, requested: string | undefined): Response {
  c.header("Access-Control-Allow-Methods", CORS_METHODS);
  c.header("Access-Control-Allow-Headers", requested ?? CORS_HEADERS);
  c.header("Access-Control-Max-Age", "600");
  return c.body(null, 204);
}

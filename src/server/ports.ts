/**
 * The server's ports: what the HTTP app (and the live CLI) need from a running Inferno — the configuration, model
 * discovery, the model cache and a logger. `createRuntime()` in src/runtime builds the real one and implements these
 * shapes; the server depends on this contract only and never imports src/runtime (enforced by dependency-cruiser).
 */
import type {
  AcquireOptions,
  CacheEvent,
  CacheEvents,
  CacheStats,
  CacheSummary,
  KeepAlive,
  LastSave,
  Lease,
  LoadedModelInfo,
  WarmupProgress,
  WarmupResult,
  WarmupStrategy,
} from "../cache/types.js";
import type { LoadedModel, TokenUsage } from "../backends/types.js";
import type { AdviceReport } from "../cache/sim/advise.js";
import type { InfernoConfig } from "../config/schema.js";
import type { ModelDescriptor, ModelMetadata } from "../models/types.js";

/** The ModelCache API the server drives (see `src/cache/model-cache.ts`). */
export interface CacheService {
  getModel(name: string, options?: AcquireOptions): Promise<LoadedModel>;
  acquire(name: string, options?: AcquireOptions): Promise<Lease>;
  /** A lease on a model loaded now, counting nothing (the server's warm-up requests); null when it is not loaded. */
  acquireLoaded(name: string): Promise<Lease | null>;
  withModel<T>(name: string, fn: (model: LoadedModel) => Promise<T> | T, options?: AcquireOptions): Promise<T>;
  load(name: string, options?: { keepAlive?: KeepAlive; signal?: AbortSignal }): Promise<LoadedModelInfo>;
  /** A pinned model needs `force`. */
  evict(name: string, options?: { force?: boolean }): Promise<boolean>;
  clear(options?: { model?: string; force?: boolean; stats?: boolean }): Promise<string[]>;
  warmup(options?: { models?: string[]; strategy?: WarmupStrategy }): Promise<WarmupResult>;
  readonly warmupDone: Promise<WarmupResult>;
  /** The start-up warm-up's plan and how much of it is settled (null before the plan is made). */
  startupWarmupProgress(): WarmupProgress | null;
  stats(): CacheStats;
  /** Counts a generation's prompt for the prompt cache's statistics. */
  recordPrompt(usage: TokenUsage): void;
  /** O(1) numbers for /health and /metrics. */
  summary(): CacheSummary;
  loadedModels(): LoadedModelInfo[];
  saveCache(): Promise<LastSave>;
  close(): Promise<void>;
  on<E extends keyof CacheEvents>(event: E, listener: (payload: CacheEvents[E]) => void): () => void;
  /** Every event with its `type` (for the event stream). */
  onAny(listener: (event: CacheEvent) => void): () => void;
}

/** Model discovery as the server uses it (`ModelManager` implements it). */
export interface ModelCatalog {
  list(): Promise<ModelDescriptor[]>;
  resolve(name: string): Promise<ModelDescriptor>;
  /** Header metadata of a resolved model (read once per file version); throws ModelInvalid for a broken file. */
  metadata(model: ModelDescriptor): Promise<ModelMetadata>;
  /** The shortest name that resolves to each model, by the model's name: the ids clients see in model lists. */
  shortNames(): Promise<Map<string, string>>;
}

/** Structured logging, pino-shaped: a message with optional fields. */
export interface Logger {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
  debug(fields: Record<string, unknown>, message: string): void;
}

/** Reports model load progress (0..1) as backends tell it, e.g. to a progress line on the terminal. */
export type LoadProgressListener = (name: string, fraction: number) => void;

/** Where a request for a model is served: here, or on a peer (`url`: its advertise URL). */
export type FleetRoute = { kind: "local" } | { kind: "forward"; node: string; url: string };

/** How many nodes forwarded a request already. */
export const FLEET_HOP_HEADER = "x-inferno-fleet-hop";
/** The fleet secret on a forwarded request. */
export const FLEET_SECRET_HEADER = "x-inferno-fleet-secret";

/**
 * This node's part of the fleet's warm-up: `waiting` for a plan that names it, `loading` its part, `done`, or
 * `draining` (shutting down). `/ready` answers 200 only when `done`.
 */
export interface FleetReadiness {
  state: "waiting" | "loading" | "done" | "draining";
  /** The latest plan that named this node. */
  plan: string | null;
  /** The models of its part that `/ready` waits for, and how many of them are settled (loaded or failed). */
  part: string[];
  settled: number;
}

/** The whole fleet as `GET /v1/fleet` shows it (and `inferno fleet status` prints it). Times are ISO 8601. */
export interface FleetView {
  fleet: string;
  /** The node that answered, and its view of Redis. */
  node: string;
  status: "ok" | "degraded";
  redis: string;
  now: string;
  leader: { node: string | null; epoch: number; lease_until: string | null };
  nodes: Array<{
    id: string;
    url: string;
    alive: boolean;
    lease_until: string;
    draining: boolean;
    version: string;
    started_at: string;
    memory_used_bytes: number;
    memory_capacity_bytes: number;
    models_loaded: number;
    model_capacity: number;
    loading: number;
    rpm: number;
    /** Its copies. */
    models: Array<{ name: string; state: "ready" | "loading" }>;
  }>;
  /** Every model with a copy or with fleet usage: its copies and its usage (the fleet's merged statistics). */
  models: Array<{
    name: string;
    copies: Array<{ node: string; state: "ready" | "loading" }>;
    requests: number;
    last_used: string | null;
  }>;
  plan: {
    id: string;
    leader: string;
    epoch: number;
    created_at: string;
    items: Array<{
      model: string;
      node: string;
      bytes: number;
      /** A share-back move: the node whose copy this one relieves (it keeps its copy, the spare once this is in). */
      from?: string;
      state: "pending" | "loading" | "loaded" | "failed";
    }>;
    settled: number;
    total: number;
    skipped: Array<{ model: string; reason: string }>;
  } | null;
}

/**
 * This node's part in a fleet (`[fleet] redis_url` set; see docs/fleet.md), as the server routes by it. No Redis
 * round trip when the mirror knows a holder.
 */
export interface FleetPort {
  /** This node's id in the fleet. */
  readonly nodeId: string;
  /** `ok` while Redis answers; `degraded` while the node serves alone. */
  status(): "ok" | "degraded";
  /** This node's part of the warm-up (`/ready` waits for it). */
  readiness(): FleetReadiness;
  /** The whole fleet, read from Redis now; throws `FleetUnavailable` when Redis cannot be asked. */
  view(): Promise<FleetView>;
  /** One cache event as `/v1/cache/events` names it, for the fleet's event stream (`inferno fleet events`). */
  publishEvent(event: Record<string, unknown>): void;
  /** What peers send with a forwarded request (empty: none configured, forwards are taken unauthenticated). */
  readonly secret: string;
  /**
   * Where a request for `model` goes. `hops`: how many nodes forwarded it already; at the bound it is served here.
   * `exclude`: peers that failed this request before their first byte.
   */
  route(model: string, hops: number, exclude?: ReadonlySet<string>): Promise<FleetRoute>;
  /**
   * Whether `node`'s lease runs, as the mirror sees it (no Redis call): a holder that stops heartbeating is not. While
   * Redis is away, true (no lease is renewed then).
   */
  alive(node: string): boolean;
  /**
   * A forward to `node` failed before its first byte (it could not be reached, or stopped heartbeating): every request
   * skips it until it heartbeats again or its lease ends. True when it was not skipped yet (the caller warns once).
   */
  unreachable(node: string): boolean;
  /** The fleet's figures for `/v1/cache/stats` (reads the merged usage from Redis, bounded by the call limit). */
  stats(): Promise<FleetStats>;
  /** The models live nodes publish (name, file size, whether a ready copy exists), from the mirror: no Redis call. */
  models(): FleetModel[];
}

/**
 * `/v1/cache/stats`' `fleet` member (only in a fleet): the live nodes as this node's mirror sees them, and the fleet's
 * merged usage (the sum of every node's saved statistics). The node's own figures are the rest of the answer.
 */
export interface FleetStats {
  status: "ok" | "degraded";
  node_id: string;
  /** The Redis URL without its password. */
  redis: string;
  /** This node's usage deltas waiting for Redis (an outage). */
  pending_deltas: number;
  nodes: Array<{
    id: string;
    url: string;
    models_loaded: number;
    max_cached_models: number;
    memory_bytes: number;
    memory_limit_bytes: number;
    loading: number;
    load_slots: number;
    /** Requests the node's cache took over the last minute. */
    rpm: number;
    draining: boolean;
  }>;
  /** null while Redis cannot be read, or before any node saved. */
  usage: {
    hits: number;
    misses: number;
    hit_rate: number;
    loads: number;
    load_failures: number;
    models: Array<{ name: string; requests: number; hits: number; misses: number; loads: number }>;
  } | null;
}

/** A model some node of the fleet can serve. */
export interface FleetModel {
  /** The shortest name that means it in the fleet (its file stem when no other model shares it). */
  id: string;
  name: string;
  size_bytes: number;
  loaded: boolean;
}

/** The parts of a runtime that the HTTP app reads. */
export interface ServerRuntime {
  readonly config: InfernoConfig;
  readonly models: ModelCatalog;
  readonly cache: CacheService;
  readonly logger: Logger;
  /**
   * What other cache settings would have done with the logged requests (`GET /v1/cache/advise`); throws `NoRequestLog`
   * when the log is off or empty. In a fleet the report's `fleet` member answers what the fleet's merged log needs for
   * `targetHitRate` (default 0.9): how many nodes, or how much memory per node.
   */
  advise(options?: { targetHitRate?: number }): Promise<AdviceReport>;
  /** This node's fleet; null for a single node (and until the node has joined, which needs its listening port). */
  readonly fleet?: FleetPort | null;
}

/** The fleet's shared records as plain data: what the engine reads and writes, the mirror holds and placement ranks. */
import type { Bytes, EpochMilliseconds } from "../models/types.js";

/** Milliseconds of Redis time (`TIME`): every lease and `since` in the fleet is one, never a node's clock. */
export type RedisMilliseconds = number;

/** One model a node can load: the same name on every node, and enough of its file to tell two versions apart. */
export interface ServedModel {
  /** File size: two nodes' files of one name with different sizes are different models. */
  size: Bytes;
  /** sha256 of the file when the node knows it; compared only when both sides know it. */
  sha256?: string;
  /** The node's estimate of the memory the model takes once loaded there. */
  bytes: Bytes;
}

/** What a node publishes with each heartbeat (`node:<id>` `record`). */
export interface NodeRecord {
  /** What peers dial (`fleet.advertise_url`). */
  url: string;
  /** Inferno's version. */
  version: string;
  started_at: EpochMilliseconds;
  memory_capacity: Bytes;
  memory_used: Bytes;
  model_capacity: number;
  model_count: number;
  /** Last use of the node's least recently used resident model (wall-clock ms); null with nothing resident. */
  lru_time: EpochMilliseconds | null;
  /** Loads in progress and how many may run at once. */
  loading: number;
  load_slots: number;
  /** Requests per minute over the last minute. */
  rpm: number;
  /** Shutting down: takes no new loads. */
  draining: boolean;
  /** The models the node can load, by name. */
  serves: Record<string, ServedModel>;
  /** The traffic of each model it holds, by name (what the copies rule and routing over copies read). */
  traffic?: Record<string, ModelTraffic>;
  /** Copies it holds that the fleet does not need (the copies rule): evicting one loses nothing. */
  spare_copies?: number;
  /** Its idle models in the order it evicts them, with memory and expected reload loss (placement.ts `evictable`). */
  evictable?: Array<{ bytes: Bytes; loss: number }>;
  /** Models it unloaded in the last few minutes: their files are likely still in its page cache. */
  warm?: string[];
  /**
   * Its usage of the models it used most, by name: uses per hour, decayed (`frequency_per_hour`), at most
   * `USAGE_PUBLISHED` of them. Other nodes add it to their own when they weigh a model (`fleetFrequency`).
   */
  usage?: Record<string, number>;
  /** Its recent loads (`LoadRates`): their median time per GiB of memory, and how many there were. */
  load_rate?: LoadRate;
}

/** A node's recent loads: their median time per GiB of the memory loaded, and how many loads that median is over. */
export interface LoadRate {
  ms_per_gib: number;
  loads: number;
  /**
   * The same of those loads that found the model's file warm in the page cache (unloaded here minutes before), and of
   * the reloads that found it cold (first loads are in neither); each absent while there was none: from them every
   * node prices a warm file (`fleetWarmSaving`).
   */
  warm?: { ms_per_gib: number; loads: number };
  cold?: { ms_per_gib: number; loads: number };
}

/** One model's traffic on the node that holds it. */
export interface ModelTraffic {
  /** Requests it serves per minute (measured over the last 20 s). */
  rpm: number;
  /** Requests in flight (its queue). */
  queue: number;
  /** Its use streak here (wall-clock ms): since when it is used without a long pause, and its last use. */
  since: number;
  last: number;
}

export type CopyState = "ready" | "loading";

/** One node's copy of a model (`copies:<model>` field value). */
export interface Copy {
  state: CopyState;
  since: RedisMilliseconds;
  /** End of a loading copy's lease (its loader renews it while it makes progress); 0 for a ready copy. */
  lease: RedisMilliseconds;
  /** Only the holder knows it: promote, renew and release must present it. */
  token: string;
}

/** A copy with the node holding it. */
export interface Holder {
  node: string;
  copy: Copy;
}

/** A recorded load failure. */
export interface LoadFailure {
  node: string;
  message: string;
  at: RedisMilliseconds;
}

export interface FleetNodeState {
  id: string;
  /** Lease end (Redis ms): past it, the node is dead. */
  lease: RedisMilliseconds;
  /** null until its record was read. */
  record: NodeRecord | null;
}

/** The whole shared state at one instant (`SNAPSHOT`), and where the feed continues. */
export interface FleetSnapshot {
  now: RedisMilliseconds;
  seq: number;
  feedId: string;
  nodes: FleetNodeState[];
  copies: Array<{ model: string; node: string; copy: Copy }>;
}

/** One feed entry. */
export type FeedEvent =
  | { seq: number; id: string; kind: "copy"; model: string; node: string; copy: Copy | null }
  | { seq: number; id: string; kind: "node"; node: string; record: NodeRecord }
  | { seq: number; id: string; kind: "gone"; node: string }
  | { seq: number; id: string; kind: "fail"; model: string; node: string; failure: LoadFailure };

/**
 * Pins: `cache.always_warm` and per-model `pinned = true` (and per-model `ttl_seconds`), turned into canonical model
 * keys by resolving each name exactly as a request would (so `tiny` pins `llama/tiny.gguf`). The live cache and the
 * CLI's file mode both use this, so "is it pinned?" has one answer with or without a server.
 */
import type { CacheConfig } from "../config/schema.js";
import { messageOf } from "../errors/index.js";
import { matchSaved } from "../models/name-index.js";
import type { ModelDescriptor } from "../models/types.js";

/** A configured name that did not resolve to a model (reported, not fatal). */
export interface UnresolvedName {
  name: string;
  error: string;
}

export class Pins {
  private constructor(
    /** Pinned keys → position in `always_warm` (Infinity for `pinned = true` overrides, which come after). */
    private readonly order: ReadonlyMap<string, number>,
    /** Key → configured `ttl_seconds` override. */
    private readonly ttls: ReadonlyMap<string, number>,
    /** Pinned keys → the name the model resolved to. */
    readonly names: ReadonlyMap<string, string>,
    readonly unresolved: readonly UnresolvedName[],
  ) {}

  /** No pins at all. */
  static none(): Pins {
    return new Pins(new Map(), new Map(), new Map(), []);
  }

  /**
   * Resolves the configured names with `resolve` (the model source's own). Names that do not resolve are listed in
   * `unresolved`; a saved model they name (`saved`, e.g. from the state file when its file is missing) is still
   * matched by name — by the model manager's own rule (`matchSaved`), so an ambiguous name pins nothing — and a pinned
   * model's statistics stay protected while its file is away.
   */
  static async resolve(
    config: Pick<CacheConfig, "always_warm" | "models">,
    resolve: (name: string) => Promise<ModelDescriptor>,
    saved: ReadonlyArray<{ key: string; name: string }> = [],
  ): Promise<Pins> {
    const order = new Map<string, number>();
    const ttls = new Map<string, number>();
    const names = new Map<string, string>();
    const unresolved: UnresolvedName[] = [];
    const named = [
      ...config.always_warm.map((name, index) => ({ name, index, pinned: true, ttl: undefined as number | undefined })),
      ...Object.entries(config.models).map(([name, o]) => ({
        name,
        index: Infinity,
        pinned: o.pinned === true,
        ttl: o.ttl_seconds,
      })),
    ];
    for (const { name, index, pinned, ttl } of named) {
      let key: string;
      let resolvedName: string;
      try {
        ({ key, name: resolvedName } = await resolve(name));
      } catch (error) {
        const matches = matchSaved(name, saved);
        const match = matches.length === 1 ? matches[0] : undefined;
        if (!match) {
          unresolved.push({ name, error: messageOf(error) });
          continue;
        }
        ({ key, name: resolvedName } = match);
      }
      if (pinned && !order.has(key)) {
        order.set(key, index);
        names.set(key, resolvedName);
      }
      if (ttl !== undefined) ttls.set(key, ttl);
    }
    return new Pins(order, ttls, names, unresolved);
  }

  has(key: string): boolean {
    return this.order.has(key);
  }

  /** Pinned keys → position in `always_warm` (Infinity for a `pinned = true` override): the warm-up plan's input. */
  get alwaysWarm(): ReadonlyMap<string, number> {
    return this.order;
  }

  /** Position in `always_warm`, Infinity for a `pinned = true` override, null when not pinned. */
  alwaysWarmIndex(key: string): number | null {
    return this.order.get(key) ?? null;
  }

  /** The configured `ttl_seconds` of this model, or undefined. */
  ttlSeconds(key: string): number | undefined {
    return this.ttls.get(key);
  }

  keys(): IterableIterator<string> {
    return this.order.keys();
  }

  get size(): number {
    return this.order.size;
  }
}

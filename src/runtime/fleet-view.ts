/**
 * `GET /v1/fleet` from what Redis holds at one instant: the nodes and their copies (a snapshot), the warm-up plan with
 * its progress and the leader, and the fleet's merged usage. One pure function: the node reads, this shapes.
 */
import type { CacheState } from "../cache/persistence/types.js";
import type { FleetSnapshot, PlanView } from "../fleet/index.js";
import type { FleetView } from "../server/ports.js";

const iso = (ms: number) => new Date(ms).toISOString();

export interface FleetViewInputs {
  fleet: string;
  node: string;
  status: "ok" | "degraded";
  redis: string;
  snapshot: FleetSnapshot;
  plan: PlanView;
  usage: CacheState | null;
}

/** One model's figures in the fleet's merged usage. */
export interface FleetModelUsage {
  requests: number;
  hits: number;
  misses: number;
  loads: number;
  last: number | null;
}

/**
 * The fleet's merged usage by model name, sorted by name. The statistics are keyed by each node's path of the file, so
 * one model served from different folders (`/srv/a/m.gguf`, `/data/m.gguf`) has an entry per path: summed here.
 */
export function usageByName(state: CacheState | null): Map<string, FleetModelUsage> {
  const usage = new Map<string, FleetModelUsage>();
  for (const m of state?.models ?? []) {
    const seen = usage.get(m.name) ?? { requests: 0, hits: 0, misses: 0, loads: 0, last: null };
    const last = m.usage.last_used_at;
    usage.set(m.name, {
      requests: seen.requests + m.usage.requests,
      hits: seen.hits + m.usage.hits,
      misses: seen.misses + m.usage.misses,
      loads: seen.loads + m.usage.loads,
      last: last === null ? seen.last : Math.max(last, seen.last ?? last),
    });
  }
  return new Map([...usage].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export function fleetView(inputs: FleetViewInputs): FleetView {
  const { snapshot, plan: planView } = inputs;
  const now = snapshot.now;
  const usage = usageByName(inputs.usage);
  const copies = new Map<string, Array<{ node: string; state: "ready" | "loading" }>>();
  for (const c of snapshot.copies) {
    const list = copies.get(c.model) ?? [];
    list.push({ node: c.node, state: c.copy.state });
    copies.set(c.model, list);
  }
  const names = [...new Set([...copies.keys(), ...usage.keys()])].sort();
  const { leader } = planView;
  const plan = planView.plan;
  const items =
    plan?.items.map((i) => ({ ...i, state: planView.progress[`${i.model}@${i.node}`] ?? ("pending" as const) })) ?? [];
  return {
    fleet: inputs.fleet,
    node: inputs.node,
    status: inputs.status,
    redis: inputs.redis,
    now: iso(now),
    leader: {
      node: leader.node !== "" && leader.lease >= now ? leader.node : null,
      epoch: leader.epoch,
      lease_until: leader.node !== "" ? iso(leader.lease) : null,
    },
    nodes: snapshot.nodes.map((n) => ({
      id: n.id,
      url: n.record?.url ?? "",
      alive: n.lease >= now,
      lease_until: iso(n.lease),
      draining: n.record?.draining ?? false,
      version: n.record?.version ?? "",
      started_at: iso(n.record?.started_at ?? 0),
      memory_used_bytes: n.record?.memory_used ?? 0,
      memory_capacity_bytes: n.record?.memory_capacity ?? 0,
      models_loaded: n.record?.model_count ?? 0,
      model_capacity: n.record?.model_capacity ?? 0,
      loading: n.record?.loading ?? 0,
      rpm: n.record?.rpm ?? 0,
      models: snapshot.copies
        .filter((c) => c.node === n.id)
        .map((c) => ({ name: c.model, state: c.copy.state }))
        .sort((a, b) => a.name.localeCompare(b.name)),
    })),
    models: names.map((name) => ({
      name,
      copies: copies.get(name) ?? [],
      requests: usage.get(name)?.requests ?? 0,
      last_used: usage.get(name)?.last != null ? iso(usage.get(name)!.last!) : null,
    })),
    plan: plan
      ? {
          id: plan.id,
          leader: plan.leader,
          epoch: plan.epoch,
          created_at: iso(plan.created_at),
          items,
          settled: items.filter((i) => i.state === "loaded" || i.state === "failed").length,
          total: items.length,
          skipped: plan.skipped,
        }
      : null,
  };
}

/**
 * The fleet warm-up's leader: one node at a time plans (ModelMesh's leader does its proactive loading). Every node runs
 * `tick()` at each heartbeat; it takes or renews the leader lease (one script, times from Redis `TIME`, a fencing epoch
 * per new holder). The leader plans when the set of live nodes has a node the current plan does not know (a fleet
 * start: no plan; a node joined or restarted), or when a node the plan names is gone with its part unsettled (a leader
 * killed mid-plan: `replanReason`), and that set has held still for `settleMs` (nodes of a fleet start come up within
 * seconds of each other: one plan over all of them, not one per arrival). The plan is the pure
 * `planFleetWarmup` over the fleet's usage and a snapshot of the nodes and copies, stored by a script that refuses a
 * leader whose epoch is no longer the current one: a leader that stalled or died mid-plan writes nothing, and the node
 * that took over within one lease writes the plan once.
 */
import { warmupHistoryOf } from "../cache/state-view.js";
import type { WarmupHistory } from "../cache/policy/warmup.js";
import type { CacheState } from "../cache/persistence/types.js";
import type { FleetEngine, PlanView } from "./engine.js";
import type { FleetNodeState, FleetSnapshot } from "./types.js";
import { type FleetPlan, planFleetWarmup, replanReason } from "./warmup.js";

export interface FleetLeaderOptions {
  engine: FleetEngine;
  /** The leader lease (ms): another node takes over this long after the leader's last renewal. */
  leaseMs: number;
  /** How long the set of live nodes must hold still before a plan (ms). */
  settleMs: number;
  /** Only models used this recently are planned (ms); 0 = no limit. */
  restoreWindowMs: number;
  halfLifeHours: number;
  /** A model's `max_copies` (the share back never plans more copies); default copies.ts `DEFAULT_MAX_COPIES`. */
  maxCopies?: (model: string) => number;
  /** Wall-clock now (the usage's times are wall-clock). Default `Date.now`. */
  now?: () => number;
  log: { info(message: string): void };
}

/** The fleet's usage per model name (the entry of highest frequency when several files share a name). */
export function historyByName(state: CacheState | null, now: number, halfLifeHours: number): WarmupHistory[] {
  const byName = new Map<string, WarmupHistory>();
  for (const model of state?.models ?? []) {
    const history = warmupHistoryOf(model, now, halfLifeHours);
    const seen = byName.get(model.name);
    if (!seen || history.frequency > seen.frequency) byName.set(model.name, history);
  }
  return [...byName.values()];
}

/** The nodes a plan covers: live, with a record, not draining; id → `started_at`. */
function plannedNodes(snapshot: FleetSnapshot): Record<string, number> {
  const nodes: Record<string, number> = {};
  for (const n of liveNodes(snapshot)) if (!n.record!.draining) nodes[n.id] = n.record!.started_at;
  return nodes;
}

function liveNodes(snapshot: FleetSnapshot): FleetNodeState[] {
  return snapshot.nodes.filter((n) => n.lease >= snapshot.now && n.record !== null);
}

const keyOf = (nodes: Record<string, number>) =>
  Object.entries(nodes)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([id, started]) => `${id}@${started}`)
    .join(",");

export class FleetLeader {
  /** The epoch this node leads under; null when it does not lead. */
  epoch: number | null = null;
  private lastKey = "";
  private stableSince = 0;

  constructor(private readonly options: FleetLeaderOptions) {}

  /** One round: lead (or not), and plan when the nodes changed and settled. Throws `FleetUnavailable` in an outage. */
  async tick(): Promise<FleetPlan | null> {
    const { engine } = this.options;
    const lead = await engine.lead(this.options.leaseMs);
    if (lead.node !== engine.nodeId) {
      this.epoch = null;
      return null;
    }
    if (this.epoch !== lead.epoch) {
      this.epoch = lead.epoch;
      this.lastKey = "";
      this.options.log.info(`fleet: ${engine.nodeId} leads the warm-up (epoch ${lead.epoch})`);
    }
    const snapshot = await engine.snapshot();
    const nodes = plannedNodes(snapshot);
    const key = keyOf(nodes);
    if (key !== this.lastKey) {
      this.lastKey = key;
      this.stableSince = snapshot.now;
    }
    if (key === "" || snapshot.now - this.stableSince < this.options.settleMs) return null;
    const current = await engine.readPlan();
    const reason = replanReason(current.plan, current.progress, nodes);
    if (reason === null) return null;
    if (reason.kind === "lost") {
      const lost = reason.items.map((i) => `${i.model} on ${i.node}`).join(", ");
      this.options.log.info(`fleet: plan ${current.plan!.id} lost ${lost} with its node; planning again`);
    }
    return this.plan(lead.epoch, snapshot, nodes, current, reason.kind === "joined" ? reason.nodes : []);
  }

  /**
   * Plans over `snapshot` under `epoch` and stores the plan; null when fenced (another node leads now). The items of
   * the `previous` plan still to load on nodes that are still there are pending: their nodes load them. The `joined`
   * nodes get their share back from the others (warmup.ts, step 4).
   */
  async plan(
    epoch: number,
    snapshot: FleetSnapshot,
    nodes = plannedNodes(snapshot),
    previous?: PlanView,
    joined: readonly string[] = [],
  ): Promise<FleetPlan | null> {
    const { engine } = this.options;
    const now = (this.options.now ?? Date.now)();
    const usage = await engine.loadUsage();
    const live = snapshot.copies.filter((c) => snapshot.nodes.some((n) => n.id === c.node && n.lease >= snapshot.now));
    const held = new Set(live.map((c) => c.model));
    const pending = (previous?.plan?.items ?? []).filter((item) => {
      const sameNode = nodes[item.node] !== undefined && previous!.plan!.nodes[item.node] === nodes[item.node];
      const state = previous!.progress[`${item.model}@${item.node}`];
      return sameNode && state !== "failed" && state !== "loaded";
    });
    const planned = planFleetWarmup({
      now,
      restoreWindowMs: this.options.restoreWindowMs,
      history: historyByName(usage, now, this.options.halfLifeHours),
      nodes: liveNodes(snapshot).filter((n) => Object.hasOwn(nodes, n.id)),
      held,
      pending,
      joined,
      copies: live.map((c) => ({ model: c.model, node: c.node, ready: c.copy.state === "ready" })),
      ...(this.options.maxCopies ? { maxCopies: this.options.maxCopies } : {}),
    });
    const plan: FleetPlan = {
      id: `${epoch}:${snapshot.now}`,
      epoch,
      leader: engine.nodeId,
      created_at: snapshot.now,
      nodes,
      items: planned.items,
      skipped: planned.skipped,
    };
    if ((await engine.writePlan(plan)) === "fenced") {
      this.epoch = null;
      return null;
    }
    this.options.log.info(
      `fleet: warm-up plan ${plan.id}: ${plan.items.map((i) => `${i.model} → ${i.node}${i.from ? ` (from ${i.from})` : ""}`).join(", ") || "nothing to load"}`,
    );
    return plan;
  }
}

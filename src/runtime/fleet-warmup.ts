/**
 * The fleet warm-up on one node (docs/fleet.md, "Warm-up"): at each heartbeat the node takes its turn at leading
 * (src/fleet/leader.ts plans when a node joined) and reads the plan; a plan that names this process (its id and start
 * time) gives it its part, which it loads in order, recording each item's progress in Redis. Until its own part is
 * loaded (or failed) the node's `/ready` answers 503. A node that no plan names within `waitMs` (no leader could plan:
 * Redis away, or the fleet's usage empty for long) stops waiting and is ready; a degraded node does not wait at all.
 *
 * The share back (src/fleet/warmup.ts, step 4): an item that names the node it comes `from` is claimed as one copy
 * more beside that node's (within the model's `max_copies`); once it is ready, the node it came from gives way
 * (`FleetMember.giveWay`): its copy becomes the spare one, evicted first when it needs room, never unloaded at once.
 */
import type { KeepAlive } from "../cache/types.js";
import { FleetUnavailable, messageOf } from "../errors/index.js";
import { setLongTimeout, type LongTimer } from "../cache/clock.js";
import { DEFAULT_MAX_COPIES } from "../fleet/copies.js";
import type { FleetLeader, FleetMember, FleetPlan, FleetPlanItem, MemberClaim } from "../fleet/index.js";
import type { FleetReadiness } from "../server/ports.js";

export interface NodeWarmupOptions {
  member: FleetMember;
  leader: FleetLeader;
  /** Loads one model here (the cache's `load`). */
  load: (name: string, options?: { keepAlive?: KeepAlive }) => Promise<unknown>;
  /** This process's `started_at` as its record publishes it: a plan names the node by it. */
  startedAt: number;
  /** How often the node leads and reads the plan (ms): the heartbeat. */
  intervalMs: number;
  /** How long a node waits for a plan that names it before it is ready anyway (ms). */
  waitMs: number;
  /** A model's `max_copies`: a move never claims more. Default copies.ts `DEFAULT_MAX_COPIES`. */
  maxCopies?: (model: string) => number;
  log: { info(message: string): void; warn(message: string): void };
}

export class NodeWarmup {
  private state: FleetReadiness["state"] = "waiting";
  /** The latest plan that named this node. */
  private planId: string | null = null;
  /** The plan whose part `/ready` waits for: the first that named this node. */
  private gate: string | null = null;
  private part: string[] = [];
  private settled = 0;
  /** Models plans move off this node: model → the node that takes it (this copy gives way once that one is ready). */
  private readonly giving = new Map<string, string>();
  private timer: LongTimer | null = null;
  private ticking: Promise<void> | null = null;
  private loading: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly waitUntil: number;

  constructor(private readonly options: NodeWarmupOptions) {
    this.waitUntil = Date.now() + options.waitMs;
  }

  /** Where the node's part stands, for `/ready` and `/v1/fleet`. */
  readiness(): FleetReadiness {
    return { state: this.state, plan: this.planId, part: [...this.part], settled: this.settled };
  }

  /** Starts leading and following plans, one round now and one per interval. */
  start(): void {
    const round = () => {
      if (this.stopped) return;
      this.ticking = this.tick().finally(() => {
        this.ticking = null;
        if (this.stopped) return;
        this.timer = setLongTimeout(round, this.options.intervalMs);
        this.timer.unref();
      });
    };
    round();
  }

  /** Stops the rounds (a part being loaded finishes its current model and stops). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.clear();
    await this.ticking;
  }

  /** Marks the node draining: it takes no new part, and `/ready` says so. */
  drain(): void {
    this.state = "draining";
  }

  private async tick(): Promise<void> {
    const { member, leader, log } = this.options;
    if (member.status !== "joined") {
      if (this.state === "waiting") this.ready("the fleet is degraded: the node warms nothing from the fleet");
      return;
    }
    try {
      await leader.tick();
      const { plan } = await member.engine.readPlan();
      if (plan && plan.id !== this.planId && plan.nodes[member.nodeId] === this.options.startedAt) this.take(plan);
      await this.giveWay();
    } catch (error) {
      if (!(error instanceof FleetUnavailable)) log.warn(`fleet: warm-up round failed: ${messageOf(error)}`);
    }
    if (this.state === "waiting" && Date.now() >= this.waitUntil) {
      this.ready(
        `no warm-up plan named this node within ${Math.round(this.options.waitMs / 1000)} s; ready without one`,
      );
    }
  }

  private ready(why: string): void {
    this.state = "done";
    this.options.log.info(`fleet: ${why}`);
  }

  /** Loads this node's part of `plan`, after any part it is loading still; notes the models it moves off this node. */
  private take(plan: FleetPlan): void {
    const self = this.options.member.nodeId;
    const part = plan.items.filter((i) => i.node === self);
    for (const item of plan.items) if (item.from === self) this.giving.set(item.model, item.node);
    this.planId = plan.id;
    if (this.state === "waiting") {
      this.gate = plan.id;
      this.part = part.map((i) => i.model);
      this.settled = 0;
      this.state = part.length > 0 ? "loading" : "done";
    }
    this.loading = this.loading.then(() => this.loadPart(plan.id, part));
  }

  /**
   * The moves off this node whose copy on the taking node is ready: this node's copy gives way to it. A move whose
   * taking node is gone, or whose model this node no longer holds, is forgotten.
   */
  private async giveWay(): Promise<void> {
    const { member, log } = this.options;
    for (const [model, to] of this.giving) {
      const taken = member.holders(model).find((h) => h.node === to);
      if (member.ownCopy(model) === undefined || !member.mirror.liveNodes().some((n) => n.id === to)) {
        this.giving.delete(model);
      } else if (taken?.copy.state === "ready") {
        this.giving.delete(model);
        if (await member.giveWay(model)) log.info(`fleet: ${model} moved to ${to}; the copy here is now the spare`);
      }
    }
  }

  private async loadPart(planId: string, part: FleetPlanItem[]): Promise<void> {
    const { member, log } = this.options;
    const progress = (model: string, state: "loading" | "loaded" | "failed") =>
      member.engine.planProgress(planId, model, state).catch(() => false);
    for (const { model, from } of part) {
      if (this.stopped || this.state === "draining") break;
      await progress(model, "loading");
      // Claimed as a request's load is: a request may have had the model loaded elsewhere since the leader planned (a
      // plan leaves held models out), and this node then loads no second copy; a claim made after this one finds this
      // node loading.
      let claim: MemberClaim | undefined;
      try {
        // A move: one copy more beside its node's, while that node holds it (else a copy as for any other item).
        const holders = member.holders(model);
        const wanted = from !== undefined && holders.some((h) => h.node === from) ? holders.length + 1 : 1;
        claim = await member.claim(model, Math.min(wanted, this.options.maxCopies?.(model) ?? DEFAULT_MAX_COPIES));
        if (claim.kind === "held" && !claim.holders.some((h) => h.node === member.nodeId)) {
          log.info(`fleet: warm-up leaves ${model} to the node that holds it now`);
        } else await this.options.load(model);
        await progress(model, "loaded");
      } catch (error) {
        // A load that never started: its claim would hold the model for nobody until its lease ran out.
        const own = member.ownCopy(model);
        if (claim && claim.kind !== "held" && own?.state === "loading" && own.token === claim.copy.token) {
          await member.release(model, own.token);
        }
        log.warn(`fleet: warm-up could not load ${model}: ${messageOf(error)}`);
        await progress(model, "failed");
      }
      if (this.gate === planId) this.settled++;
    }
    if (this.state === "loading" && this.gate === planId) {
      this.state = "done";
      log.info(`fleet: warm-up part of plan ${planId} loaded (${part.map((i) => i.model).join(", ")})`);
    }
  }
}

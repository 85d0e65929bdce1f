/**
 * A draining node's models go elsewhere before it stops serving them (docs/fleet.md, "Drain and rolling restarts"):
 * in the drain order (src/fleet/drain.ts: most recently used first, those unused for an hour left to go), each is asked
 * of the node placement picks (the draining node is never picked) through that node's load route, with the fleet
 * secret; once it is loaded there this node releases its copy, so every node routes the model to its new holder. A
 * model another node holds already is only released. The node keeps serving what it still has meanwhile.
 */
import type { LoadedModelInfo } from "../cache/types.js";
import { messageOf } from "../errors/index.js";
import { drainOrder, type FleetMember, type ServedModel } from "../fleet/index.js";
import { FLEET_HOP_HEADER, FLEET_SECRET_HEADER } from "../server/ports.js";

/** How long a peer may take to load one model for a drain (ms). */
const DRAIN_LOAD_TIMEOUT_MS = 120_000;

export interface DrainInputs {
  member: FleetMember;
  /** The models resident here. */
  models: readonly LoadedModelInfo[];
  served: Readonly<Record<string, ServedModel>>;
  secret: string;
  now: number;
  log: { info(message: string): void; warn(message: string): void };
}

export interface DrainResult {
  /** Loaded elsewhere (or held elsewhere already): their copies here were released. */
  moved: Array<{ model: string; node: string }>;
  /** Unused for an hour: they go with the node. */
  left: string[];
  /** No node could take them, or the load there failed: served here until the node stops. */
  failed: string[];
}

/** Asks `url` (a peer) to load `model`; throws with the peer's answer when it does not. */
async function loadOn(url: string, model: string, secret: string): Promise<void> {
  const headers: Record<string, string> = { "content-type": "application/json", [FLEET_HOP_HEADER]: "1" };
  if (secret !== "") headers[FLEET_SECRET_HEADER] = secret;
  const response = await fetch(`${url}/v1/cache/models/${encodeURIComponent(model)}/load`, {
    method: "POST",
    headers,
    body: "{}",
    signal: AbortSignal.timeout(DRAIN_LOAD_TIMEOUT_MS),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${response.status} ${text.slice(0, 200)}`);
}

export async function drainModels(inputs: DrainInputs): Promise<DrainResult> {
  const { member, log } = inputs;
  const self = member.nodeId;
  const ready = inputs.models.filter((m) => m.state === "ready");
  const order = drainOrder(
    ready.map((m) => ({ name: m.name, lastUsed: m.last_used === null ? null : Date.parse(m.last_used) })),
    inputs.now,
  );
  const result: DrainResult = { moved: [], left: order.leave, failed: [] };
  for (const model of order.move) {
    const own = member.ownCopy(model);
    try {
      let node = member.holders(model).find((h) => h.node !== self && h.copy.state === "ready")?.node;
      if (node === undefined) {
        const file = inputs.served[model];
        const placed = member.place(model, file ? { size: file.size } : undefined, [self]);
        const url = placed.node !== null ? member.mirror.node(placed.node)?.record?.url : undefined;
        if (placed.node === null || url === undefined) throw new Error("no other node can load it");
        await loadOn(url, model, inputs.secret);
        node = placed.node;
      }
      if (own) await member.release(model, own.token);
      result.moved.push({ model, node });
    } catch (error) {
      log.warn(`fleet: drain could not move ${model}: ${messageOf(error)}; it is served here until the node stops`);
      result.failed.push(model);
    }
  }
  return result;
}

/**
 * The fleet's usage statistics as a `StateStore` ("merge my delta", cache/persistence/types.ts): a save hands the
 * delta to the member, which merges it into Redis in one compare-and-set script, exactly once by its id, or keeps it
 * through an outage and merges it when Redis returns. So fleet usage is the sum of the nodes'. The node's own state
 * file stays its local copy (the runtime saves there too); this store never fails a save for an outage.
 */
import type { RestoreResult, SaveResult, StateDelta, StateStore } from "../cache/persistence/types.js";
import type { FleetMember } from "./member.js";

export class FleetUsageStore implements StateStore {
  readonly path: string;

  constructor(private readonly member: FleetMember) {
    this.path = `${member.engine.url} (fleet usage, ${member.engine.keys.usage})`;
  }

  async load(): Promise<RestoreResult> {
    if (this.member.status !== "joined") {
      return {
        state: null,
        warning: `the fleet's usage cannot be read: Redis at ${this.member.engine.url} is unreachable`,
      };
    }
    return { state: await this.member.loadUsage(), warning: null };
  }

  async save(delta: StateDelta): Promise<SaveResult> {
    await this.member.saveUsage(delta);
    return { bytes: Buffer.byteLength(JSON.stringify(delta)) };
  }
}

/** The fleet: several nodes serving as one model cache, coordinated through Redis. The runtime composes it. */
export { FleetEngine, type ClaimResult, type FleetEngineOptions, type HeartbeatResult } from "./engine.js";
export { fleetKeys, type FleetKeys } from "./keys.js";
export {
  FleetMember,
  type FleetLog,
  type FleetMemberOptions,
  type FleetStatus,
  type FleetSummary,
  type MemberClaim,
} from "./member.js";
export { FleetMirror } from "./mirror.js";
export {
  candidatesFor,
  placeModel,
  type Placement,
  type PlacementCandidate,
  type PlacementRequest,
} from "./placement.js";
export { evictionLadder, type NodeFacts, nodeRecordOf } from "./record.js";
export { fleetSettings, redactRedisUrl, type FleetSettings } from "./settings.js";
export type * from "./types.js";
export { FleetUsageStore } from "./usage-store.js";

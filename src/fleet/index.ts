/** The fleet: several nodes serving as one model cache, coordinated through Redis. The runtime composes it. */
export {
  EVENTS_MAX,
  FleetEngine,
  type ClaimResult,
  type FleetEngineOptions,
  type FleetEventEntry,
  type HeartbeatResult,
  type Leadership,
  type PlanView,
} from "./engine.js";
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
export {
  busyLadder,
  evictionLadder,
  fleetLoadRate,
  fleetWarmSaving,
  LoadRates,
  type LoadTier,
  type NodeFacts,
  nodeRecordOf,
  publishedUsage,
  RequestRate,
} from "./record.js";
export { redactRedisUrl } from "../config/secrets.js";
export { fleetSettings, type FleetSettings } from "./settings.js";
export type * from "./types.js";
export { FleetUsageStore } from "./usage-store.js";
export { DRAIN_IDLE_MS, drainOrder, type DrainingModel, type DrainPlan } from "./drain.js";
export { FleetLeader, historyByName, type FleetLeaderOptions } from "./leader.js";
export {
  planFleetWarmup,
  WARMUP_SHARE,
  type FleetPlan,
  type FleetPlanItem,
  type FleetPlanItemState,
  type FleetWarmupInputs,
  type FleetWarmupPlan,
} from "./warmup.js";

/**
 * The fleet's Redis keys. Every key of one fleet shares the hash tag `{<name>}`, so each Lua script touches a single
 * slot and runs on Redis Cluster too; the fleet's data is small, so one shard holds it all.
 *
 * | key | type | holds |
 * |---|---|---|
 * | `nodes` | sorted set | node id → lease end (ms, Redis `TIME`) |
 * | `node:<id>` | hash | `record`: the node's published record (JSON), `incarnation` |
 * | `held:<id>` | set | the models that node has a copy of (so pruning a dead node needs no scan) |
 * | `models` | set | the models that have at least one copy |
 * | `copies:<model>` | hash | node id → copy (JSON: `state` ready or loading, `since`, `lease` end, `token`) |
 * | `fail:<model>` | sorted set | one member per load failure (JSON: node, message), scored by its time |
 * | `usage` | hash | `state`: the merged usage statistics (JSON `CacheState`), `version` |
 * | `usage:applied` | sorted set | delta ids already merged, scored by when (so a retried delta counts once) |
 * | `seq` | string | the feed's sequence number (a gap tells a mirror it missed entries) |
 * | `feed` | stream | every change, for mirrors (`XADD MAXLEN ~`) |
 * | `leader`, `leader:epoch` | hash, string | the warm-up leader's lease (node, fencing epoch, lease end); the last epoch |
 * | `plan`, `plan:progress` | hashes | the warm-up plan (`id`, `plan` JSON); `<model>@<node>` → loading, loaded, failed |
 * | `events` | stream | every node's cache events, for `inferno fleet events` (`XADD MAXLEN ~`) |
 */
export interface FleetKeys {
  prefix: string;
  nodes: string;
  models: string;
  usage: string;
  usageApplied: string;
  seq: string;
  feed: string;
  events: string;
}

export function fleetKeys(name: string): FleetKeys {
  const prefix = `inferno:{${name}}:`;
  return {
    prefix,
    nodes: `${prefix}nodes`,
    models: `${prefix}models`,
    usage: `${prefix}usage`,
    usageApplied: `${prefix}usage:applied`,
    seq: `${prefix}seq`,
    feed: `${prefix}feed`,
    events: `${prefix}events`,
  };
}

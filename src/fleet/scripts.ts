/**
 * The fleet's Lua scripts: every change to shared state is one of these, so it is atomic (Redis runs a script alone).
 * Time comes from Redis `TIME` inside the script, never from a node's clock. Redis 7.0 commands only (no hash-field
 * expiry: leases are scores and fields read against `TIME`).
 *
 * Every script takes the feed key as `KEYS[1]` (so a cluster client routes it to the fleet's slot) and the key prefix
 * `inferno:{<name>}:` as `ARGV[1]`; the other keys are built from the prefix and all share the one hash tag.
 *
 * Redis Cluster: a script runs on the node serving the slot of its declared keys, so the keys it builds must hash to
 * that same slot. The rule that keeps them there: every key is `ARGV[1] .. suffix`, and the prefix holds the hash tag
 * `{<name>}`, so the slot is that of `<name>` whatever the suffix (model names and node ids included). Declaring every
 * key is not possible (a claim finds which copies to drop while it runs), and one slot is enough for a fleet's small
 * data. test/fleet/engine.test.ts runs every script on a cluster-mode server and checks each key's slot.
 *
 * Commands: Redis 7.0 and Valkey — nothing newer (no `HEXPIRE`, no `WITHSCORE` on `ZRANK`); `XADD … MAXLEN ~` (5.0),
 * `ZRANGE … WITHSCORES`, `SET … NX`, `HSET` with several fields (4.0) are the newest used.
 *
 * A copy is JSON `{"state":"ready"|"loading","since":ms,"lease":ms,"token":"…"}` (`lease` is the end of a loading
 * copy's lease; 0 for a ready one, which lives as long as its node). A feed entry is `seq`, `kind`, `model`, `node`,
 * `value`: kinds `copy` (value: the copy, empty when removed), `node` (value: the record), `gone` (the node was
 * pruned or restarted), `fail` (value: the failure).
 */

const COMMON = `
local P = ARGV[1]
local FEED = KEYS[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local FEED_MAX = 10000
local function feed(kind, model, node, value)
  local seq = redis.call('INCR', P .. 'seq')
  redis.call('XADD', FEED, 'MAXLEN', '~', FEED_MAX, '*', 'seq', seq, 'kind', kind, 'model', model, 'node', node, 'value', value)
end
local function alive(node, now)
  local lease = redis.call('ZSCORE', P .. 'nodes', node)
  return lease ~= false and tonumber(lease) >= now
end
local function put_copy(model, node, copy)
  redis.call('HSET', P .. 'copies:' .. model, node, copy)
  redis.call('SADD', P .. 'held:' .. node, model)
  redis.call('SADD', P .. 'models', model)
  feed('copy', model, node, copy)
end
local function drop_copy(model, node)
  redis.call('HDEL', P .. 'copies:' .. model, node)
  redis.call('SREM', P .. 'held:' .. node, model)
  if redis.call('EXISTS', P .. 'copies:' .. model) == 0 then redis.call('SREM', P .. 'models', model) end
  feed('copy', model, node, '')
end
local function drop_node(node)
  for _, model in ipairs(redis.call('SMEMBERS', P .. 'held:' .. node)) do drop_copy(model, node) end
  redis.call('DEL', P .. 'held:' .. node, P .. 'node:' .. node)
  redis.call('ZREM', P .. 'nodes', node)
  feed('gone', '', node, '')
end
-- The caller's copy of a model when its token matches, else nil.
local function own_copy(model, node, token)
  local raw = redis.call('HGET', P .. 'copies:' .. model, node)
  if not raw then return nil end
  local copy = cjson.decode(raw)
  if copy.token ~= token then return nil end
  return copy
end
`;

/**
 * Heartbeat. ARGV: prefix, node id, incarnation, record JSON, lease ms, a new epoch id. Extends the node's lease to
 * Redis now + lease and stores its record (a feed entry when it changed). A node whose stored incarnation differs
 * restarted: the copies of its previous process are dropped first. Returns `{now, lease, known, leases, epoch}`:
 * `known` is 0 when Redis did not know this process (first beat, pruned while it was away, or Redis restarted empty),
 * so the caller re-publishes its copies; `leases` is every node's lease (flat id, lease), for the mirror; `epoch` names
 * this Redis dataset (set by the first heartbeat that finds none), so a node tells a Redis restarted empty — whose
 * merged usage is gone — from a short outage.
 */
export const HEARTBEAT = `${COMMON}
local node, incarnation, record, lease_ms = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local now = now_ms()
local key = P .. 'node:' .. node
local stored = redis.call('HGET', key, 'incarnation')
local known = 0
if stored == incarnation and redis.call('ZSCORE', P .. 'nodes', node) then known = 1 end
if stored and stored ~= incarnation then drop_node(node) end
redis.call('ZADD', P .. 'nodes', now + lease_ms, node)
local previous = redis.call('HGET', key, 'record')
redis.call('HSET', key, 'record', record, 'incarnation', incarnation)
if previous ~= record then feed('node', '', node, record) end
redis.call('SET', P .. 'epoch', ARGV[6], 'NX')
return {now, now + lease_ms, known, redis.call('ZRANGE', P .. 'nodes', 0, -1, 'WITHSCORES'), redis.call('GET', P .. 'epoch')}
`;

/** Prune. ARGV: prefix. Removes every node past its lease with all its copies. Returns the pruned ids. */
export const PRUNE = `${COMMON}
local dead = redis.call('ZRANGEBYSCORE', P .. 'nodes', '-inf', '(' .. now_ms())
for _, node in ipairs(dead) do drop_node(node) end
return dead
`;

/**
 * Claim. ARGV: prefix, model, node, token, load lease ms, failure window ms, max failures, copies wanted (copies.ts;
 * absent = 1), the node the load is for (placement's choice; absent or not live = the caller). Drops copies of dead
 * nodes and loading copies past their lease; refuses (`{'refused', now, failures…}`) after `max failures` within the
 * window; writes a loading copy with `token` for the loading node and returns `{'claimed', now, copy, node}` when there
 * is no live holder, or when there are fewer than `wanted`, none of them loading and none on the loading node (a copy
 * more, one at a time, at most one per node); else returns the live holders (`{'held', now, node, copy, …}`). A caller
 * that is not a live node gets `{'unregistered', now}`.
 *
 * The copy is written where the load will run in the same script that found no holder, so every claim's answer names
 * the node that loads: a claim made while the request travels to a placed node finds that node (never the claimer,
 * which then forwards there and loads nothing). The placed node learns of the copy from the forwarded request's claim
 * (its own id among the holders) and replaces it with its own token when its load starts (`HOLD`).
 */
export const CLAIM = `${COMMON}
local model, node, token = ARGV[2], ARGV[3], ARGV[4]
local lease_ms, window_ms, max_failures = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local wanted = tonumber(ARGV[8] or '1')
local now = now_ms()
if not alive(node, now) then return {'unregistered', now} end
local loader = ARGV[9] or node
if not alive(loader, now) then loader = node end
local fails_key = P .. 'fail:' .. model
redis.call('ZREMRANGEBYSCORE', fails_key, '-inf', '(' .. (now - window_ms))
local fails = redis.call('ZRANGE', fails_key, 0, -1, 'WITHSCORES')
if #fails / 2 >= max_failures then
  local reply = {'refused', now}
  for _, v in ipairs(fails) do reply[#reply + 1] = v end
  return reply
end
local all = redis.call('HGETALL', P .. 'copies:' .. model)
local reply = {'held', now}
local busy = false
for i = 1, #all, 2 do
  local holder, copy = all[i], cjson.decode(all[i + 1])
  if not alive(holder, now) or (copy.state == 'loading' and copy.lease < now) then
    drop_copy(model, holder)
  else
    reply[#reply + 1] = holder
    reply[#reply + 1] = all[i + 1]
    if copy.state == 'loading' or holder == node or holder == loader then busy = true end
  end
end
if #reply > 2 and (busy or (#reply - 2) / 2 >= wanted) then return reply end
local copy = cjson.encode({state = 'loading', since = now, lease = now + lease_ms, token = token})
put_copy(model, loader, copy)
return {'claimed', now, copy, loader}
`;

/** Renew. ARGV: prefix, model, node, token, lease ms. Extends a loading copy's lease. Returns the copy or false. */
export const RENEW = `${COMMON}
local model, node, token, lease_ms = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local copy = own_copy(model, node, token)
if not copy or copy.state ~= 'loading' then return false end
copy.lease = now_ms() + lease_ms
local raw = cjson.encode(copy)
put_copy(model, node, raw)
return raw
`;

/** Promote. ARGV: prefix, model, node, token. A loading copy with this token becomes ready. Returns the copy or false. */
export const PROMOTE = `${COMMON}
local model, node, token = ARGV[2], ARGV[3], ARGV[4]
local copy = own_copy(model, node, token)
if not copy or copy.state ~= 'loading' then return false end
local raw = cjson.encode({state = 'ready', since = now_ms(), lease = 0, token = token})
put_copy(model, node, raw)
return raw
`;

/** Release. ARGV: prefix, model, node, token. Removes the caller's copy (either state) when the token matches. 1 or 0. */
export const RELEASE = `${COMMON}
local model, node, token = ARGV[2], ARGV[3], ARGV[4]
if not own_copy(model, node, token) then return 0 end
drop_copy(model, node)
return 1
`;

/**
 * Hold. ARGV: prefix, model, node, copy JSON. Writes the caller's copy of one model as it holds it (a load going on
 * beside another node's copy, a load whose copy a claim made for it, or a copy Redis lost), leaving its other copies as
 * they are — among them loading copies claimed for it whose requests are still on their way. The caller must be a live
 * node. 1 or 0.
 */
export const HOLD = `${COMMON}
if not alive(ARGV[3], now_ms()) then return 0 end
put_copy(ARGV[2], ARGV[3], ARGV[4])
return 1
`;

/**
 * Record a load failure. ARGV: prefix, model, node, token, message, failure window ms. Removes the caller's copy when
 * the token matches, records the failure (it expires after the window) and returns how many failures are recent.
 */
export const FAIL = `${COMMON}
local model, node, token, message, window_ms = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local now = now_ms()
if own_copy(model, node, token) then drop_copy(model, node) end
local key = P .. 'fail:' .. model
local failure = cjson.encode({node = node, message = message, token = token, at = now})
redis.call('ZADD', key, now, failure)
redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now - window_ms))
redis.call('PEXPIRE', key, window_ms)
feed('fail', model, node, failure)
return redis.call('ZCARD', key)
`;

/**
 * Leave. ARGV: prefix, node, incarnation. A node shutting down removes its record and copies at once (when the stored
 * incarnation is its own), so peers stop routing to it now rather than when its lease runs out, and gives up the warm-up
 * leader lease if it holds it. 1 or 0.
 */
export const LEAVE = `${COMMON}
local node, incarnation = ARGV[2], ARGV[3]
if redis.call('HGET', P .. 'node:' .. node, 'incarnation') ~= incarnation then return 0 end
drop_node(node)
-- A leader that leaves hands the warm-up lease on now, not when it runs out (the next holder gets a new epoch).
if redis.call('HGET', P .. 'leader', 'node') == node then redis.call('DEL', P .. 'leader') end
return 1
`;

/**
 * Publish. ARGV: prefix, node, then pairs of model and copy: the caller's copies as it holds them, after Redis lost or
 * missed its changes (restarted empty, the node pruned while it could not reach Redis, or releases made while it was
 * degraded). Its other copies in Redis are dropped (models it evicted meanwhile, or a claim that timed out on the
 * caller's side but ran later), then these are written. A model another node holds in the meantime keeps both copies.
 * The caller must be a live node: `{'unregistered'}` otherwise, else `{'ok'}`.
 */
export const PUBLISH = `${COMMON}
local node = ARGV[2]
if not alive(node, now_ms()) then return {'unregistered'} end
local keep = {}
for i = 3, #ARGV, 2 do keep[ARGV[i]] = true end
for _, model in ipairs(redis.call('SMEMBERS', P .. 'held:' .. node)) do
  if not keep[model] then drop_copy(model, node) end
end
for i = 3, #ARGV, 2 do put_copy(ARGV[i], node, ARGV[i + 1]) end
return {'ok'}
`;

/**
 * Snapshot: the whole shared state at one instant, for a mirror. ARGV: prefix. Returns `{now, seq, last feed id,
 * nodes, copies}`: nodes flat (id, lease, record), copies flat (model, node, copy). The feed continues after the id.
 */
export const SNAPSHOT = `${COMMON}
local now = now_ms()
local seq = tonumber(redis.call('GET', P .. 'seq') or '0')
local last = redis.call('XREVRANGE', FEED, '+', '-', 'COUNT', 1)
local last_id = '0-0'
if #last > 0 then last_id = last[1][1] end
local nodes = {}
local leases = redis.call('ZRANGE', P .. 'nodes', 0, -1, 'WITHSCORES')
for i = 1, #leases, 2 do
  nodes[#nodes + 1] = leases[i]
  nodes[#nodes + 1] = leases[i + 1]
  nodes[#nodes + 1] = redis.call('HGET', P .. 'node:' .. leases[i], 'record') or ''
end
local copies = {}
for _, model in ipairs(redis.call('SMEMBERS', P .. 'models')) do
  local all = redis.call('HGETALL', P .. 'copies:' .. model)
  for i = 1, #all, 2 do
    copies[#copies + 1] = model
    copies[#copies + 1] = all[i]
    copies[#copies + 1] = all[i + 1]
  end
end
return {now, seq, last_id, nodes, copies}
`;

/**
 * Read the merged usage. ARGV: prefix, delta id. Returns `{state or false, version, applied}`: `applied` is 1 when
 * that delta was merged already.
 */
export const USAGE_READ = `${COMMON}
local state = redis.call('HGET', P .. 'usage', 'state')
local version = tonumber(redis.call('HGET', P .. 'usage', 'version') or '0')
local applied = 0
if ARGV[2] ~= '' and redis.call('ZSCORE', P .. 'usage:applied', ARGV[2]) then applied = 1 end
return {state, version, applied}
`;

/**
 * Write the merged usage: a compare-and-set on the version, idempotent by delta id. ARGV: prefix, delta id, expected
 * version, new state JSON, ids kept, `keep` ('1': the id is never trimmed: a node's base contribution to an epoch,
 * which a restarted node must find again however many deltas came since), the epoch the caller's statistics belong
 * to ('' = any). An empty state JSON records the id alone (a base with nothing in it). Returns `'dup'` (that delta was merged already: nothing written), `'epoch'` (Redis restarted empty
 * since the caller last looked: its pending deltas are in the base it must contribute first), `'conflict'` (another
 * node merged in between: read again and retry) or `'ok'`.
 */
export const USAGE_WRITE = `${COMMON}
local id, expected, state, keep, epoch = ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), ARGV[7]
local applied = P .. 'usage:applied'
if redis.call('ZSCORE', applied, id) then return 'dup' end
if epoch ~= '' and redis.call('GET', P .. 'epoch') ~= epoch then return 'epoch' end
if state ~= '' then
  local version = tonumber(redis.call('HGET', P .. 'usage', 'version') or '0')
  if version ~= expected then return 'conflict' end
  redis.call('HSET', P .. 'usage', 'state', state, 'version', version + 1)
end
local score = now_ms()
if ARGV[6] == '1' then score = '+inf' end
redis.call('ZADD', applied, score, id)
redis.call('ZREMRANGEBYRANK', applied, 0, -(keep + 1))
return 'ok'
`;

/**
 * Lead. ARGV: prefix, node, lease ms. The leader lease (`leader` hash: node, epoch, lease end): a live caller takes it
 * when nobody holds it or its lease ran out, with a new fencing epoch (`INCR leader:epoch`); its holder renews it (the
 * same epoch). Returns `{leader, epoch, lease end, now}`: the caller leads when the leader is itself.
 */
export const LEAD = `${COMMON}
local node, lease_ms = ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local key = P .. 'leader'
local holder = redis.call('HGET', key, 'node')
local lease = tonumber(redis.call('HGET', key, 'lease') or '0')
local epoch = tonumber(redis.call('HGET', key, 'epoch') or '0')
if holder == node and lease >= now then
  redis.call('HSET', key, 'lease', now + lease_ms)
  return {node, epoch, now + lease_ms, now}
end
if (not holder or lease < now) and alive(node, now) then
  epoch = redis.call('INCR', P .. 'leader:epoch')
  redis.call('HSET', key, 'node', node, 'epoch', epoch, 'lease', now + lease_ms)
  return {node, epoch, now + lease_ms, now}
end
return {holder or '', epoch, lease, now}
`;

/**
 * Write the warm-up plan. ARGV: prefix, node, epoch, plan id, plan JSON. Only the leader with this epoch and a running
 * lease writes (fencing: a leader that lost its lease while it planned writes nothing); the plan's progress starts
 * empty. Returns `{'ok', now}` or `{'fenced', current epoch}`.
 */
export const PLAN_WRITE = `${COMMON}
local node, epoch, id, plan = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local now = now_ms()
local leader = redis.call('HMGET', P .. 'leader', 'node', 'epoch', 'lease')
if leader[1] ~= node or tonumber(leader[2]) ~= epoch or tonumber(leader[3]) < now then
  return {'fenced', tonumber(leader[2] or '0')}
end
redis.call('HSET', P .. 'plan', 'id', id, 'plan', plan)
redis.call('DEL', P .. 'plan:progress')
return {'ok', now}
`;

/**
 * A node's progress on its part of the plan. ARGV: prefix, plan id, model, node, state (loading, loaded, failed).
 * Written only while that plan is the current one. 1 or 0.
 */
export const PLAN_PROGRESS = `${COMMON}
if redis.call('HGET', P .. 'plan', 'id') ~= ARGV[2] then return 0 end
redis.call('HSET', P .. 'plan:progress', ARGV[3] .. '@' .. ARGV[4], ARGV[5])
return 1
`;

/**
 * Read the plan, its progress and the leader. ARGV: prefix. Returns `{plan JSON or '', progress (flat item, state),
 * leader node or '', epoch, lease end, now}`.
 */
export const PLAN_READ = `${COMMON}
local leader = redis.call('HMGET', P .. 'leader', 'node', 'epoch', 'lease')
return {redis.call('HGET', P .. 'plan', 'plan') or '', redis.call('HGETALL', P .. 'plan:progress'),
  leader[1] or '', tonumber(leader[2] or '0'), tonumber(leader[3] or '0'), now_ms()}
`;

/** Every script by the command name the engine registers it under. */
export const SCRIPTS = {
  fleetHeartbeat: HEARTBEAT,
  fleetPrune: PRUNE,
  fleetClaim: CLAIM,
  fleetRenew: RENEW,
  fleetPromote: PROMOTE,
  fleetRelease: RELEASE,
  fleetHold: HOLD,
  fleetFail: FAIL,
  fleetPublish: PUBLISH,
  fleetLeave: LEAVE,
  fleetSnapshot: SNAPSHOT,
  fleetUsageRead: USAGE_READ,
  fleetUsageWrite: USAGE_WRITE,
  fleetLead: LEAD,
  fleetPlanWrite: PLAN_WRITE,
  fleetPlanProgress: PLAN_PROGRESS,
  fleetPlanRead: PLAN_READ,
} as const;

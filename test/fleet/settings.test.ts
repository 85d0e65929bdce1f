/** The `[fleet]` configuration: loading, validation, and the settings a node derives from it. */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { ConfigInvalid } from "../../src/errors/index.js";
import { redactRedisUrl } from "../../src/config/secrets.js";
import { fleetSettings } from "../../src/fleet/settings.js";
import { cliSandbox } from "../../testkit/cli.js";

test("no redis_url: a single node, no fleet settings", async (t) => {
  const s = await cliSandbox(t);
  const { config } = await s.resolve();
  assert.equal(config.fleet.redis_url, "");
  assert.equal(config.fleet.heartbeat_seconds, 5);
  assert.equal(config.fleet.node_timeout_seconds, 15);
  assert.equal(fleetSettings(config), null);
});

test("INFERNO_FLEET__REDIS_URL joins a fleet; node id, advertise URL and secret default from the server", async (t) => {
  const s = await cliSandbox(t);
  const { config, origins } = await s.resolve({
    INFERNO_FLEET__REDIS_URL: "rediss://app:pa55@redis.lan:6380/2",
    INFERNO_SERVER__HOST: "10.0.0.5",
    INFERNO_SERVER__API_KEY: "k",
  });
  assert.deepEqual(origins.get("fleet.redis_url"), { kind: "env", source: "INFERNO_FLEET__REDIS_URL" });
  const { copies, ...settings } = fleetSettings(config)!;
  assert.deepEqual(copies("any.gguf"), { minCopies: 0, maxCopies: 4, scaleUpRpm: 60 });
  assert.deepEqual(settings, {
    redisUrl: "rediss://app:pa55@redis.lan:6380/2",
    redactedUrl: "rediss://app:***@redis.lan:6380/2",
    name: "default",
    nodeId: "10.0.0.5:8080",
    advertiseUrl: "http://10.0.0.5:8080",
    heartbeatMs: 5000,
    nodeTimeoutMs: 15_000,
    secret: "k",
    scaleUpRpm: 60,
    kept: [],
    evictionPolicy: "reload-cost",
  });
  assert.equal(fleetSettings(config, 9000)?.nodeId, "10.0.0.5:9000", "the port the server listens on (server.port 0)");
});

test("a fleet node bound to a wildcard address must name its advertise_url", async (t) => {
  const s = await cliSandbox(t);
  const file = join(s.root, "fleet.toml");
  await writeFile(file, '[fleet]\nredis_url = "redis://127.0.0.1:6379"\n[server]\nhost = "0.0.0.0"\nport = 8081\n');
  await assert.rejects(s.resolve({}, { configFile: file }), (error: unknown) => {
    assert.ok(error instanceof ConfigInvalid);
    assert.match(error.message, /fleet\.advertise_url: must be set when server\.host is the wildcard 0\.0\.0\.0/);
    assert.match(error.message, /fleet\.advertise_url = "http:\/\/10\.0\.0\.5:8081"/);
    return true;
  });
  await writeFile(
    file,
    '[fleet]\nredis_url = "redis://127.0.0.1:6379"\nadvertise_url = "http://10.0.0.7:8081/"\nsecret = "s"\n[server]\nhost = "::"\n',
  );
  const { config } = await s.resolve({}, { configFile: file });
  const settings = fleetSettings(config);
  assert.equal(settings?.advertiseUrl, "http://10.0.0.7:8081");
  assert.equal(settings?.nodeId, "10.0.0.7:8081");
  assert.equal(settings?.secret, "s");
  // Without a fleet, a wildcard bind is fine as before.
  const alone = await s.resolve({ INFERNO_SERVER__HOST: "0.0.0.0" });
  assert.equal(fleetSettings(alone.config), null);
});

test("bad fleet values are refused with the key named", async (t) => {
  const s = await cliSandbox(t);
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ INFERNO_FLEET__REDIS_URL: "http://redis:6379" }, /fleet\.redis_url: .*redis:\/\/ or rediss:\/\//],
    [{ INFERNO_FLEET__NAME: "a{b}" }, /fleet\.name: .*letters, digits/],
    [
      { INFERNO_FLEET__REDIS_URL: "redis://r", INFERNO_FLEET__NODE_TIMEOUT_SECONDS: "5" },
      /fleet\.node_timeout_seconds: must exceed fleet\.heartbeat_seconds \(5\), found 5/,
    ],
    [{ INFERNO_FLEET__ADVERTISE_URL: "10.0.0.5:8080" }, /fleet\.advertise_url: .*expected http:\/\/host:port/],
  ];
  for (const [vars, message] of cases) {
    await assert.rejects(s.resolve(vars), message);
  }
});

test("a Redis URL's password (or lone token) never shows in its redacted form", () => {
  assert.equal(redactRedisUrl("redis://user:secret@h:1/0"), "redis://user:***@h:1/0");
  assert.equal(redactRedisUrl("rediss://:secret@h"), "rediss://:***@h");
  assert.equal(redactRedisUrl("redis://token@h"), "redis://***@h");
  assert.equal(redactRedisUrl("redis://h:6379"), "redis://h:6379");
});

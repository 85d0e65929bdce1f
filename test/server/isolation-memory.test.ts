/** max_memory_mb held on the memory the OS measures for the model hosts, not on the pre-load estimate. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { processMemory } from "../../src/backends/host/memory.js";
import { HOSTED, loaded, stats } from "../helpers/hosts.js";
import { startTestServer, waitFor } from "../helpers/server.js";
import { MIB } from "../../src/units.js";

it("max_memory_mb holds on the memory the OS measures for the hosts, not on the estimate", async (t) => {
  // One host's measured memory, from a first server, sets a limit that two estimates fit in but two hosts do not.
  const probe = await startTestServer(t, {
    config: { cache: { enable_warmup: false, persist_cache: false }, backend: HOSTED },
  });
  await probe.openai().completions.create({ model: "tiny.gguf", prompt: "Hi", max_tokens: 1 });
  const hostBytes = (await loaded(probe))[0]?.memory_bytes as number;
  const estimate = await probe.runtime.models.estimateMemory(
    await probe.runtime.models.resolve("tiny.gguf"),
    probe.runtime.config.backend,
  );
  await probe.stop();
  // Hosts run from source here carry tsx (~35 MiB), which the estimate (made for installed hosts) leaves out.
  assert.ok(hostBytes > estimate, `a host measured ${hostBytes} B, above the estimate ${estimate} B`);
  const limitMb = Math.floor((hostBytes + estimate) / MIB);
  assert.ok(2 * estimate < limitMb * MIB, `two estimates (${estimate} B each) fit in ${limitMb} MiB`);

  const s = await startTestServer(t, {
    models: { gguf: { "a.gguf": { seed: 1 }, "b.gguf": { seed: 2 } } },
    config: { cache: { enable_warmup: false, max_memory_mb: limitMb }, backend: HOSTED },
  });
  const client = s.openai();
  await client.completions.create({ model: "a.gguf", prompt: "Hi", max_tokens: 1 });
  const [a] = await loaded(s);
  const measured = (await processMemory(a?.pid as number)) as number;
  assert.ok(
    Math.abs((a?.memory_bytes as number) - measured) / measured < 0.25,
    `${a?.memory_bytes} accounted vs ${measured} measured`,
  );
  await client.completions.create({ model: "b.gguf", prompt: "Hi", max_tokens: 1 });
  await waitFor(async () => (await loaded(s)).length === 1);
  assert.deepEqual(
    (await loaded(s)).map((m) => m.name),
    ["b.gguf"],
  );
  const after = await stats(s);
  assert.equal(after.evictions.capacity_memory, 1);
  assert.ok(after.memory_bytes <= after.memory_limit_bytes, `${after.memory_bytes} <= ${after.memory_limit_bytes}`);
});

/**
 * A spare host's warm-up folder never outlives it (issue 23, item 7: 16 `inferno-host-warm-up-*` folders after a day
 * of restarts): a host stopped while it warms up removes its folder on the way out, and a host that starts removes the
 * folders of hosts that were killed outright (each folder names its host's pid).
 */
import assert from "node:assert/strict";
import { mkdir, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import { HostedBackend } from "../../src/backends/hosted.js";

const folders = async (pid: number) =>
  (await readdir(tmpdir())).filter((name) => name.startsWith(`inferno-host-warm-up-${pid}-`));

it("a host stopped while it warms up leaves no folder; an orphan of a killed host is removed by the next", async () => {
  const orphan = join(tmpdir(), "inferno-host-warm-up-2147483646-orphan");
  await mkdir(orphan, { recursive: true });

  const stopped = new HostedBackend("gguf");
  void stopped.ready({ gpu: false }).catch(() => undefined);
  const pid = stopped.sparePid as number;
  // Waits until it writes its warm-up model, then stops it.
  for (let i = 0; i < 600 && (await folders(pid)).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal((await folders(pid)).length, 1, "the host warms up in its own folder");
  await stopped.dispose();
  assert.ok(!(await readdir(tmpdir())).includes("inferno-host-warm-up-2147483646-orphan"), "the orphan was removed");

  // A host asked to exit removes its folder on the way out; one that did not answer in time was killed (SIGKILL runs
  // nothing), and the next host to start removes its folder: either way none is left once the next one is ready.
  const next = new HostedBackend("gguf");
  await next.ready({ gpu: false });
  assert.deepEqual(await folders(pid), [], "no folder left by the stopped host");
  const nextPid = next.sparePid as number;
  await next.dispose();
  assert.deepEqual(await folders(nextPid), []);
});

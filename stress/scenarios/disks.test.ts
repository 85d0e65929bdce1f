/**
 * `npm run stress`'s failing disks (stress/scenarios/disks.ts): a full tmpfs, a read-only remount (both need root: CI
 * runs as root; skipped with the reason otherwise) and a vanished cache directory, on a real server.
 */
import { it } from "node:test";
import { disksScenario } from "./disks.js";
import { runBounded } from "../../testkit/stress.js";

it("disk full, read-only, vanished directory: saves fail at once with the real cause, the file intact, nothing lost", async (t) => {
  await runBounded(t, disksScenario);
});

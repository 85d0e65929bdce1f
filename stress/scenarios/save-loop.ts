/**
 * Child process of the SIGKILL scenario (kill-saves.ts): saves into the cache directory `argv[2]` in a tight loop, as a
 * server's saver would, each save adding one hit and one request per model, and prints `saved <n>` after each completed
 * save. It runs until it is killed.
 */
import { FileStateStore } from "../../src/cache/persistence/file-store.js";
import { oneHit, stressModels } from "../state-fixtures.js";

const store = new FileStateStore(process.argv[2] ?? "", { lockWaitMs: 60_000 });
const models = stressModels(Number(process.argv[3] ?? 100));
process.stdout.write("ready\n");
for (let n = 1; ; n++) {
  await store.save(oneHit(models));
  process.stdout.write(`saved ${n}\n`);
}

/**
 * Run as a process of its own (`node --import tsx load-state.ts DIR`): restores the state file of DIR as the runtime
 * does, and prints one JSON line — the outcome and this process's peak RSS — for tests that bound a decode's memory.
 */
import { FileStateStore } from "../src/cache/persistence/file-store.js";

const dir = process.argv[2] as string;
const started = performance.now();
const outcome = await new FileStateStore(dir).load().then(
  (result) => ({ models: result.state?.models.length ?? null, warning: result.warning }),
  (error: unknown) => ({ models: null, warning: String(error) }),
);
const peakRssBytes = process.resourceUsage().maxRSS * 1024;
process.stdout.write(`${JSON.stringify({ ...outcome, peakRssBytes, ms: Math.round(performance.now() - started) })}\n`);

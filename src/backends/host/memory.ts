/** A process's memory as the operating system counts it. */
import { readFile } from "node:fs/promises";
import type { Bytes } from "../../models/types.js";

/**
 * Memory of another process, in bytes: on Linux its proportional set size (Pss in /proc/<pid>/smaps_rollup: private
 * pages plus its share of shared ones, so pages of a memory-mapped model file shared with nobody count fully, and
 * shared libraries are split among their users), falling back to the resident set size (VmRSS in /proc/<pid>/status).
 * null where /proc offers neither (other platforms, or a process that is gone).
 */
export async function processMemory(pid: number): Promise<Bytes | null> {
  for (const [file, field] of [
    ["smaps_rollup", "Pss"],
    ["status", "VmRSS"],
  ] as const) {
    try {
      const text = await readFile(`/proc/${pid}/${file}`, "utf8");
      const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
      if (match) return Number(match[1]) * 1024;
    } catch {
      // not Linux, the process is gone, or /proc hides this file: try the next one
    }
  }
  return null;
}

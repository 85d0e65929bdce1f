/**
 * Byte units, binary as everywhere in Inferno's docs and output (`max_memory_mb` counts MiB), and the one formatter of a
 * byte count for people: the CLI's tables, `inferno ps`, `cache events`, the status page and the benchmarks.
 */

export const KIB = 1024;
export const MIB = 1024 * KIB;
export const GIB = 1024 * MIB;

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** `1536` → `1.5 KiB`; `20792608` → `19.8 MiB`; below 1 KiB, whole bytes (`999 B`). */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

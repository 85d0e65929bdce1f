/** Human-readable counts for tables, with a metric suffix (sizes: `formatBytes` in src/units.ts). */

/** `1219200` → `1.2M`; `7241732096` → `7.2B`. */
export function formatCount(count: number): string {
  if (count >= 1e9) return `${(count / 1e9).toFixed(1)}B`;
  if (count >= 1e6) return `${(count / 1e6).toFixed(1)}M`;
  if (count >= 1e3) return `${(count / 1e3).toFixed(1)}K`;
  return String(count);
}

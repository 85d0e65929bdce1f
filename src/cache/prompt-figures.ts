/**
 * The prompt cache's figures in words, as `inferno cache stats` and the status page both show them (one text, so the
 * two never drift).
 */
import { formatBytes } from "../units.js";
import type { PromptCacheStats } from "./types.js";

export function promptCacheText(p: PromptCacheStats): string {
  return (
    `${p.hits} of ${p.generations} generations reused a prefix, ${p.cached_tokens} prompt tokens saved, ` +
    `${p.evaluated_tokens} evaluated; saved prefixes: ${p.prefixes_saved} saved, ${p.prefixes_restored} restored, ` +
    `${p.prefixes_evicted} evicted, ${p.prefixes_quarantined} quarantined, ${formatBytes(p.disk_bytes)} on disk`
  );
}

/**
 * LM Studio's models folders, read-only: `~/.lmstudio/models` (current) and `~/.cache/lm-studio/models` (older
 * versions), laid out `PUBLISHER/REPO/FILE.gguf`. A folder like that is a models directory, so it is scanned as one
 * and its models keep the names LM Studio shows (`PUBLISHER/REPO/FILE.gguf`); split GGUFs are one model, as anywhere.
 */
import { scanModels, type Scan } from "../discovery.js";

/** Every model in one LM Studio models folder. */
export async function scanLmStudio(root: string): Promise<Scan> {
  const scan = await scanModels(root);
  scan.models = scan.models.map((m) => ({ ...m, store: "lmstudio" as const }));
  return scan;
}

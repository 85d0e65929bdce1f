/**
 * What a model name means, as an index: name → models, for each way of naming a file, most specific first (the path
 * relative to its store, the same without extension, the file name, the file stem). Built once per discovery from a
 * list of found models — whatever store found them — so resolving a name is a map lookup, not a pass over every file.
 */
import { basename, extname } from "node:path";
import type { FoundModel } from "./discovery.js";

export function stem(name: string): string {
  return name.slice(0, name.length - extname(name).length);
}

/** The spellings of a model name, most specific first; the first stage with any match decides. */
export const NAME_STAGES: ReadonlyArray<(name: string) => string> = [
  (n) => n,
  (n) => stem(n),
  (n) => basename(n),
  (n) => stem(basename(n)),
];

export class NameIndex {
  private readonly stages: Array<Map<string, FoundModel[]>> = NAME_STAGES.map(() => new Map());

  constructor(private readonly models: readonly FoundModel[]) {
    for (const model of models) {
      NAME_STAGES.forEach((spell, stage) => {
        const map = this.stages[stage] as Map<string, FoundModel[]>;
        const name = spell(model.name);
        const list = map.get(name);
        if (!list) map.set(name, [model]);
        else if (!list.some((m) => m.key === model.key)) list.push(model);
      });
    }
  }

  /** The models a name matches at the most specific stage that matches at all (one file: resolved; more: ambiguous). */
  match(name: string): readonly FoundModel[] {
    for (const stage of this.stages) {
      const hits = stage.get(name);
      if (hits) return hits;
    }
    return [];
  }

  /**
   * The shortest name of each model (by key) that resolves to it and to nothing else: its file stem (`tiny` for
   * `llama/tiny.gguf`) when no other model shares it, else the file name, the path without extension, or the full path.
   * What `/v1/models` and `/api/tags` list, so every listed name can be sent back.
   */
  shortestNames(): Map<string, string> {
    const names = new Map<string, string>();
    for (const model of this.models) {
      if (names.has(model.key)) continue;
      const spellings = [...new Set(NAME_STAGES.map((spell) => spell(model.name)))].sort((a, b) => a.length - b.length);
      const unique = spellings.find((name) => {
        const hits = this.match(name);
        return hits.length === 1 && hits[0]?.key === model.key;
      });
      names.set(model.key, unique ?? model.name);
    }
    return names;
  }
}

/** The shortest unambiguous name of each of these models, by key (see `NameIndex.shortestNames`). */
export function shortestNames(models: readonly FoundModel[]): Map<string, string> {
  return new NameIndex(models).shortestNames();
}

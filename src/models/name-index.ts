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

  constructor(models: readonly FoundModel[]) {
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
}

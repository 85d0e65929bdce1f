/**
 * What a model name means, as an index: name → models, for each way of naming a file, most specific first (the path
 * relative to its store, the same without extension, the file name, the file stem). Built once per discovery from a
 * list of found models — whatever store found them — so resolving a name is a map lookup, not a pass over every file.
 *
 * The one name matcher: the model manager resolves requests with it, `/v1/models` lists the shortest names it answers
 * to, and pins and the CLI's file mode match saved models (whose files may be gone) with `matchSaved`, so a name means
 * the same model everywhere.
 */
import { basename, extname } from "node:path";
import type { ModelFormat } from "./types.js";

/** The model format of a file name, by extension in any case. */
export function formatOf(fileName: string): ModelFormat | undefined {
  const ext = extname(fileName).toLowerCase();
  if (ext === ".gguf") return "gguf";
  if (ext === ".onnx") return "onnx";
  return undefined;
}

/** A name without its model extension (`.gguf`, `.onnx`); other names (`llama3:8b`, `qwen2.5:0.5b`) stay whole. */
export function stem(name: string): string {
  return formatOf(name) ? name.slice(0, name.lastIndexOf(".")) : name;
}

/** A model's names: `FoundModel`'s, or a saved model's (statistics whose file may be gone). */
interface Named {
  name: string;
  aliases?: string[] | undefined;
}
/** What the index needs of a model: its names and the key (the canonical path) that tells two models apart. */
interface Keyed extends Named {
  key: string;
}

/** A model's name and its aliases (Ollama's `NAME` for `NAME:latest`, a split's name without its part suffix). */
export function namesOf(model: Named): string[] {
  return [model.name, ...(model.aliases ?? [])];
}

/**
 * The spellings of a model's names at each stage, most specific first; the first stage with any match decides. An
 * alias ranks with the stem, so `llama3` typed while both `llama3.gguf` and Ollama's `llama3:latest` exist is
 * ambiguous, not a silent pick.
 */
export const NAME_STAGES: ReadonlyArray<(model: Named) => string[]> = [
  (m) => [m.name],
  (m) => namesOf(m).flatMap((n) => [n, stem(n)]),
  (m) => namesOf(m).map((n) => basename(n)),
  (m) => namesOf(m).map((n) => stem(basename(n))),
];

export class NameIndex<M extends Keyed> {
  private readonly stages: Array<Map<string, M[]>> = NAME_STAGES.map(() => new Map());

  constructor(private readonly models: readonly M[]) {
    for (const model of models) {
      NAME_STAGES.forEach((spell, stage) => {
        const map = this.stages[stage] as Map<string, M[]>;
        for (const name of new Set(spell(model))) {
          const list = map.get(name);
          if (!list) map.set(name, [model]);
          else if (!list.some((m) => m.key === model.key)) list.push(model);
        }
      });
    }
  }

  /** The models a name matches at the most specific stage that matches at all (one file: resolved; more: ambiguous). */
  match(name: string): readonly M[] {
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
      const spellings = [...new Set(NAME_STAGES.flatMap((spell) => spell(model)))].sort((a, b) => a.length - b.length);
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
export function shortestNames(models: readonly Keyed[]): Map<string, string> {
  return new NameIndex(models).shortestNames();
}

/**
 * The saved models (statistics whose file may be gone) a name means: the one whose key — its absolute path — the name
 * is, else the models `NameIndex` matches at its most specific stage (more than one: the name is ambiguous).
 */
export function matchSaved<M extends Keyed>(name: string, saved: readonly M[]): readonly M[] {
  const byKey = saved.find((m) => m.key === name);
  return byKey ? [byKey] : new NameIndex(saved).match(name);
}

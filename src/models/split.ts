/**
 * Multi-file ("split") GGUF models, as llama.cpp's `gguf-split` writes them: `NAME-00001-of-00003.gguf`,
 * `NAME-00002-of-00003.gguf`, … in one directory. They are one model, named and keyed by the first part; llama.cpp loads
 * every part when given the first one's path (it derives the others' names from it, so the parts keep their names).
 * This module is the one home of that naming rule, of grouping found parts into one model, and of reading their headers
 * as one.
 */
import { basename, dirname, join } from "node:path";
import { ModelInvalid } from "../errors/index.js";
import { type GgufHeader, readGgufHeader } from "./gguf-reader.js";
import type { ModelFormat } from "./types.js";

/** A found model as far as grouping splits needs it: the base of discovery's `FoundModel`. */
export interface SplitCandidate {
  /** Path relative to the models directory, `/`-separated; in a store, the name its tool gives it (`llama3:latest`). */
  name: string;
  /** Absolute path as found (may be a symlink). */
  path: string;
  /** Canonical real path: the cache key. */
  key: string;
  format: ModelFormat;
  /** Other exact names of the model: `llama3` for Ollama's `llama3:latest`, `dir/NAME.gguf` for a split's first part. */
  aliases?: string[];
  /** Every part of a split GGUF in order, as paths to open; `path` is the first. */
  parts?: string[];
  /** Why the model cannot be used (a bad manifest, a missing blob or split part); it is listed, and invalid. */
  problem?: string;
}

const SPLIT_FILE = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/i;

export interface SplitPart {
  /** The file name without the `-0000i-of-0000n.gguf` suffix. */
  prefix: string;
  /** 1-based part number. */
  index: number;
  count: number;
}

/** The split part a file name denotes, or undefined when it is not a part of a split of two or more files. */
export function splitPartOf(fileName: string): SplitPart | undefined {
  const match = SPLIT_FILE.exec(basename(fileName));
  if (!match) return undefined;
  const index = Number(match[2]);
  const count = Number(match[3]);
  if (count < 2 || index < 1 || index > count) return undefined;
  return { prefix: match[1] as string, index, count };
}

/** The name of part `index` of `count`, as `gguf-split` (and llama.cpp's loader) spells it. */
export function splitPartName(prefix: string, index: number, count: number): string {
  return `${prefix}-${String(index).padStart(5, "0")}-of-${String(count).padStart(5, "0")}.gguf`;
}

/** Replaces a found name's last segment (`a/b/x-00001-of-00002.gguf` → `a/b/NEW`). */
function withFileName(name: string, fileName: string): string {
  const at = name.lastIndexOf("/");
  return at < 0 ? fileName : `${name.slice(0, at + 1)}${fileName}`;
}

/**
 * Folds the parts of each split GGUF among `models` into one model: named, keyed and opened by its first part, with
 * every part's path in `parts` and the name without the part suffix (`dir/NAME.gguf`) as an alias. A split with a missing
 * part stays listed, with the problem saying which part is missing. Other models pass through unchanged.
 */
export function groupSplits<T extends SplitCandidate>(models: readonly T[]): T[] {
  const out: T[] = [];
  const groups = new Map<string, { split: SplitPart; members: Map<number, T> }>();
  for (const model of models) {
    const split = model.format === "gguf" ? splitPartOf(model.name) : undefined;
    if (!split) {
      out.push(model);
      continue;
    }
    const id = `${dirname(model.path)}\0${split.prefix}\0${split.count}`;
    let group = groups.get(id);
    if (!group) groups.set(id, (group = { split, members: new Map() }));
    group.members.set(split.index, model);
  }
  for (const { split, members } of groups.values()) {
    const present = [...members.values()].sort((a, b) => a.name.localeCompare(b.name));
    const sample = present[0] as T;
    const dir = dirname(sample.path);
    const parts = Array.from({ length: split.count }, (_, i) =>
      join(dir, splitPartName(split.prefix, i + 1, split.count)),
    );
    const missing = parts.filter((_, i) => !members.has(i + 1)).map((p) => basename(p));
    const first = members.get(1);
    out.push({
      ...sample,
      name: withFileName(sample.name, splitPartName(split.prefix, 1, split.count)),
      path: first?.path ?? sample.path,
      key: first?.key ?? sample.key,
      aliases: [withFileName(sample.name, `${split.prefix}.gguf`)],
      parts,
      ...(missing.length > 0
        ? {
            problem: `split GGUF of ${split.count} parts is missing ${missing.length === 1 ? "part" : "parts"} ${missing.join(", ")}`,
          }
        : {}),
    });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

function invalid(path: string, problem: string): ModelInvalid {
  return new ModelInvalid(`${path} is not a valid split GGUF model: ${problem}`, { details: { path, problem } });
}

/**
 * The headers of a split GGUF's parts read as one model's: the first part's metadata with every part's tensors. Checks
 * what llama.cpp checks when it loads them: each part's `split.no`, the same `split.count`, and the tensor total.
 */
export async function readSplitGgufHeader(parts: readonly string[]): Promise<GgufHeader> {
  const headers: GgufHeader[] = [];
  for (const part of parts) headers.push(await readGgufHeader(part));
  const first = headers[0] as GgufHeader;
  headers.forEach((header, i) => {
    const no = header.metadata.get("split.no");
    const count = header.metadata.get("split.count");
    if (no !== i || count !== parts.length) {
      throw invalid(
        parts[i] as string,
        `expected split.no ${i} and split.count ${parts.length}, found ${String(no)} and ${String(count)}`,
      );
    }
  });
  const tensors = headers.flatMap((h) => h.tensors);
  const expected = first.metadata.get("split.tensors.count");
  if (typeof expected === "number" && expected !== tensors.length) {
    throw invalid(
      parts[0] as string,
      `split.tensors.count is ${expected} but the parts hold ${tensors.length} tensors`,
    );
  }
  return { ...first, tensors, fileSize: headers.reduce((sum, h) => sum + h.fileSize, 0) };
}

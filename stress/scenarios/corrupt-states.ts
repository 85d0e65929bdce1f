/**
 * Generated corrupt state files, each given to a starting store (`FileStateStore.load`, what `inferno serve` and every
 * CLI command run first): single-bit flips and overwritten bytes of a valid file, every truncation, random bytes,
 * valid zstd frames around JSON that is not a state, every out-of-range value of test/helpers/out-of-range.ts, and
 * decompression bombs (a size declared over the cap, no declared size at all, a size declared too small).
 *
 * Each file must be quarantined (renamed aside intact, one warning, an empty start) — or, for a flip the format cannot
 * see, decode to exactly the original state. Never: a throw, a different state, a load that does not end, memory that
 * grows with the bomb rather than with the cap.
 */
import { readFile, rm, writeFile } from "node:fs/promises";
import { isDeepStrictEqual } from "node:util";
import { decodeState } from "../../src/cache/persistence/codec.js";
import { compressState, FileStateStore } from "../../src/cache/persistence/file-store.js";
import type { CacheState } from "../../src/cache/persistence/types.js";
import { DEFAULT_MAX_DECOMPRESSED_BYTES, zstdCompress } from "../../src/cache/persistence/zstd.js";
import { outOfRangeDocuments, validDocument } from "../../test/helpers/out-of-range.js";
import { type Scenario, seededRandom, Tally, withTempDir, within } from "../scenario.js";
import { MIB } from "../../src/units.js";

export interface CorruptParams {
  bitFlips: number;
  byteOverwrites: number;
  /** Truncated copies; at least the file's length means every prefix. */
  truncations: number;
  randomFiles: number;
  foreignDocuments: number;
  /** Frames declaring a content size over the cap. */
  declaredBombs: number;
  /** Frames declaring no size whose content is over the cap (each costs a decode up to the cap). */
  undeclaredBombs: number;
  /** Frames declaring a small size around a large content. */
  lyingBombs: number;
  /** A load that takes longer than this is counted as a hang. */
  hangMs: number;
}

type Kind = "bit_flip" | "byte_overwrite" | "truncation" | "random_bytes" | "foreign_json" | "out_of_range" | "bomb";

/** The bomb: 100 MiB of zeros in 3 KiB, as `zstd` streams it (the fixture of test/cache/zstd.test.ts). */
const BOMB_FIXTURE = new URL("../../test/fixtures/zeros-100MiB.zst", import.meta.url);

/** The fixture's header, taken apart: magic, descriptor, window byte, 4-byte declared size, then the blocks. */
async function bombParts(): Promise<{ blocks: Buffer; checksum: boolean }> {
  const frame = await readFile(BOMB_FIXTURE);
  const descriptor = frame[4] as number;
  if (descriptor >> 6 !== 2 || (descriptor & 0x23) !== 0) throw new Error("unexpected bomb fixture header");
  return { blocks: frame.subarray(10), checksum: (descriptor & 0x04) !== 0 };
}

/** A frame around the bomb's blocks declaring `size` bytes (null: no declared size; the decoder must find out). */
function bombFrame(parts: { blocks: Buffer; checksum: boolean }, size: number | null): Buffer {
  const check = parts.checksum ? 0x04 : 0;
  const head = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, (size === null ? 0 : 0xc0) | check, 0x68]);
  if (size === null) return Buffer.concat([head, parts.blocks]);
  const declared = Buffer.alloc(8);
  declared.writeBigUInt64LE(BigInt(size));
  return Buffer.concat([head, declared, parts.blocks]);
}

/** JSON documents that are not a state: other shapes, other formats, deep nesting, huge strings. */
function foreignDocument(random: () => number, i: number): string {
  const valid = validDocument(Date.now());
  const shapes: Array<() => unknown> = [
    () => [],
    () => null,
    () => random() * 1e6,
    () => "inferno-cache-state",
    () => ({ ...valid, format: "something-else" }),
    () => ({ ...valid, schema_version: 0 }),
    () => ({ ...valid, schema_version: -1 }),
    () => ({ ...valid, schema_version: "2" }),
    () => ({ ...valid, models: {} }),
    () => ({ ...valid, models: [null] }),
    () => ({ ...valid, counters: "lots" }),
    () => ({ format: "inferno-cache-state", schema_version: 2 }),
    () => ({ ...valid, models: [{ ...(valid.models as object[])[0], usage: null }] }),
    () => ({ ...valid, models: [{ ...(valid.models as object[])[0], key: 42 }] }),
    () => ({ ...valid, models: "x".repeat(1 + Math.floor(random() * 100_000)) }),
  ];
  if (i % 7 === 6) {
    const depth = 1000 + Math.floor(random() * 200_000);
    return "[".repeat(depth) + "]".repeat(depth);
  }
  return JSON.stringify((shapes[i % shapes.length] as () => unknown)());
}

async function* corruptFiles(p: CorruptParams, valid: Buffer): AsyncGenerator<[Kind, string, Buffer]> {
  const random = seededRandom(14);
  const pick = (n: number) => Math.floor(random() * n);
  for (let i = 0; i < p.bitFlips; i++) {
    const bit = pick(valid.length * 8);
    const bytes = Buffer.from(valid);
    bytes[bit >> 3] = (bytes[bit >> 3] as number) ^ (1 << (bit & 7));
    yield ["bit_flip", `bit ${bit} flipped`, bytes];
  }
  for (let i = 0; i < p.byteOverwrites; i++) {
    const bytes = Buffer.from(valid);
    const count = 1 + pick(8);
    for (let j = 0; j < count; j++) bytes[pick(bytes.length)] = pick(256);
    yield ["byte_overwrite", `${count} bytes overwritten (#${i})`, bytes];
  }
  const lengths =
    p.truncations >= valid.length
      ? Array.from({ length: valid.length }, (_, n) => n)
      : Array.from({ length: p.truncations }, () => pick(valid.length));
  for (const length of lengths) yield ["truncation", `cut to ${length} bytes`, valid.subarray(0, length)];
  for (let i = 0; i < p.randomFiles; i++) {
    const bytes = Buffer.from(Array.from({ length: pick(2048) }, () => pick(256)));
    // Half start like a zstd frame, so the decoder gets past the magic number.
    if (i % 2 === 0 && bytes.length >= 4) bytes.writeUInt32LE(0xfd2fb528, 0);
    yield ["random_bytes", `${bytes.length} random bytes (#${i})`, bytes];
  }
  for (let i = 0; i < p.foreignDocuments; i++) {
    yield ["foreign_json", `foreign document #${i}`, await zstdCompress(Buffer.from(foreignDocument(random, i)), 3)];
  }
  for (const [what, document] of outOfRangeDocuments(Date.now())) {
    yield ["out_of_range", what, await zstdCompress(Buffer.from(JSON.stringify(document)), 3)];
  }
  const parts = await bombParts();
  for (let i = 0; i < p.declaredBombs; i++) {
    // From just over the cap to 2^53: the header alone must refuse it.
    const size =
      DEFAULT_MAX_DECOMPRESSED_BYTES + 1 + Math.floor(random() ** 4 * (2 ** 53 - DEFAULT_MAX_DECOMPRESSED_BYTES - 1));
    yield ["bomb", `declares ${size} bytes`, bombFrame(parts, size)];
  }
  for (let i = 0; i < p.undeclaredBombs; i++)
    yield ["bomb", `100 MiB, no declared size (#${i})`, bombFrame(parts, null)];
  for (let i = 0; i < p.lyingBombs; i++) {
    const size = 1 + pick(MIB);
    yield ["bomb", `100 MiB declaring ${size} bytes`, bombFrame(parts, size)];
  }
}

export async function corruptStates(p: CorruptParams): Promise<ReturnType<Tally["result"]>> {
  const tally = new Tally();
  const startRss = process.memoryUsage().rss;
  let peakRss = startRss;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 10);
  try {
    await withTempDir("corrupt", async (dir) => {
      const original: CacheState = decodeState(Buffer.from(JSON.stringify(validDocument(Date.now()))));
      const valid = await compressState(original);
      let clock = Date.UTC(2026, 0, 1);
      for await (const [kind, what, bytes] of corruptFiles(p, valid)) {
        tally.count("files");
        tally.count(`files_${kind}`);
        // A fresh store per file, as a fresh start; distinct quarantine names so each can be checked.
        const store = new FileStateStore(dir, { now: () => clock++, lockWaitMs: 1000 });
        await writeFile(store.path, bytes);
        const outcome = await within(store.load(), p.hangMs);
        if (outcome === "timeout") {
          tally.count("hangs");
          tally.check(false, () => `${kind} (${what}): the load did not end within ${p.hangMs} ms`);
          return;
        }
        if ("error" in outcome) {
          tally.count("crashes");
          tally.check(false, () => `${kind} (${what}): the load threw ${String(outcome.error)}`);
          await rm(store.path, { force: true });
          continue;
        }
        const { state, warning } = outcome.value;
        if (state !== null) {
          // Only a change the format cannot see is acceptable: the exact original state.
          if (
            tally.check(isDeepStrictEqual(state, original), () => `${kind} (${what}): accepted as a different state`)
          ) {
            tally.count("decoded_unchanged");
          } else tally.count("accepted_altered");
          await rm(store.path, { force: true });
          continue;
        }
        const aside = /moved to (\S+\.corrupt-\S+) and the cache starts empty/.exec(warning ?? "")?.[1];
        const kept = aside === undefined ? null : await readFile(aside).catch(() => null);
        if (
          tally.check(
            kept !== null && kept.equals(bytes),
            () => `${kind} (${what}): not quarantined intact (warning: ${warning})`,
          )
        ) {
          tally.count("quarantined");
        }
        await rm(store.path, { force: true });
      }
    });
  } finally {
    clearInterval(sampler);
  }
  for (const name of ["crashes", "hangs", "accepted_altered"]) tally.figures[name] ??= 0;
  tally.set("peak_rss_mib", Math.round(peakRss / MIB));
  tally.set("rss_growth_mib", Math.round((peakRss - startRss) / MIB));
  // Bounded: what the cap allows (the decoder's output buffer, and the copy handed back), never the bomb's 100 MiB+.
  const bound = 3 * DEFAULT_MAX_DECOMPRESSED_BYTES;
  tally.set("rss_growth_bound_mib", bound / MIB);
  tally.check(
    peakRss - startRss <= bound,
    () => `memory grew by ${Math.round((peakRss - startRss) / MIB)} MiB, over ${bound / MIB} MiB`,
  );
  return tally.result();
}

export const corruptStatesScenario: Scenario<CorruptParams> = {
  name: "corrupt",
  title:
    "generated corrupt state files at start: each quarantined, 0 crashes, 0 hangs, memory bounded by the decompression cap",
  full: {
    bitFlips: 2500,
    byteOverwrites: 1000,
    truncations: Number.MAX_SAFE_INTEGER,
    randomFiles: 600,
    foreignDocuments: 400,
    declaredBombs: 60,
    undeclaredBombs: 8,
    lyingBombs: 20,
    hangMs: 30_000,
  },
  bounded: {
    bitFlips: 120,
    byteOverwrites: 40,
    truncations: 30,
    randomFiles: 30,
    foreignDocuments: 30,
    declaredBombs: 5,
    undeclaredBombs: 1,
    lyingBombs: 2,
    hangMs: 30_000,
  },
  run: corruptStates,
};

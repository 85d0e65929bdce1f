/**
 * The state file's zstd layer on WebAssembly: standard frames with a content checksum, files written by the earlier
 * native binding still read, a bounded output, and a failed decode that leaves nothing behind.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chmod, copyFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { describe, it } from "node:test";
import {
  compressState,
  decompressState,
  FileStateStore,
  STATE_FILE_NAME,
} from "../../src/cache/persistence/file-store.js";
import { replacingDelta } from "../../src/cache/persistence/merge.js";
import { emptyCounters } from "../../src/cache/state-view.js";
import { xxh64, zstdCompress, zstdDecompress } from "../../src/cache/persistence/zstd.js";
import { sampleState } from "../../testkit/state-samples.js";
import { tempDir } from "../../testkit/tmp.js";

const fixture = (name: string) => new URL(`../../testkit/fixtures/${name}`, import.meta.url);
const hasZstd = spawnSync("zstd", ["--version"]).status === 0;

/**
 * The state `testkit/fixtures/cache_state-zstd-napi-v2.bin.zst` holds (written by the zstd-napi build, no checksum).
 * Counters added after that build (and the `crashed` eviction reason) read as 0.
 */
const NAPI_STATE = sampleState({
  fingerprint: { size: 10, mtimeMs: 5 },
  metadata: {
    memory_bytes: 1024,
    gguf: { architecture: "llama", quantization: "MOSTLY_Q8_0", parameter_count: 1000, context_length: 128 },
  },
});

describe("zstd frames (WebAssembly libzstd)", () => {
  it("XXH64 matches the reference vectors", () => {
    assert.equal(xxh64(new Uint8Array()).toString(16), "ef46db3751d8e999");
    assert.equal(xxh64(new TextEncoder().encode("a")).toString(16), "d24ec4f1a98c6e5b");
    assert.equal(xxh64(new TextEncoder().encode("abc")).toString(16), "44bc2cf5ad770999");
    assert.equal(
      xxh64(new TextEncoder().encode("Nobody inspects the spammish repetition")).toString(16),
      "fbcea83c8a378bf1",
    );
  });

  it("round-trips every size around the hash's stripe boundaries, with the checksum flag set", async () => {
    for (const size of [0, 1, 3, 4, 7, 8, 31, 32, 33, 63, 64, 1000, 200_000]) {
      const data = new Uint8Array(size).map((_, i) => (i * 7919) % 251);
      const frame = await zstdCompress(data, 3);
      assert.equal(frame.readUInt32LE(0), 0xfd2fb528, "the zstd magic number");
      assert.equal((frame[4] as number) & 0x04, 0x04, "Content_Checksum_flag");
      assert.deepEqual(Buffer.from(await zstdDecompress(frame)), Buffer.from(data), `size ${size}`);
    }
  });

  it(
    "`zstd -t` verifies the checksum and `zstd -dc` prints the document",
    { skip: hasZstd ? false : "the zstd binary is not installed" },
    async (t) => {
      const dir = await tempDir(t);
      const file = join(dir, STATE_FILE_NAME);
      await writeFile(file, await compressState(NAPI_STATE));
      execFileSync("zstd", ["-t", "-q", file]);
      assert.match(execFileSync("zstd", ["-lv", file], { encoding: "utf8" }), /Check: XXH64/);
      assert.deepEqual(
        JSON.parse(execFileSync("zstd", ["-dc", file], { encoding: "utf8" })).counters,
        NAPI_STATE.counters,
      );
    },
  );

  it("a state file written by the zstd-napi build (no checksum) still loads", async (t) => {
    const bytes = await readFile(fixture("cache_state-zstd-napi-v2.bin.zst"));
    assert.equal((bytes[4] as number) & 0x04, 0, "the old writer set no checksum");
    assert.deepEqual(await decompressState(bytes), NAPI_STATE);
    const dir = await tempDir(t);
    const store = new FileStateStore(dir);
    await copyFile(fixture("cache_state-zstd-napi-v2.bin.zst"), store.path);
    await chmod(store.path, 0o600); // as a save leaves it (a copy is world-readable, which load would warn about)
    assert.deepEqual(await store.load(), { state: NAPI_STATE, warning: null });
    await store.save({ ...replacingDelta(NAPI_STATE), reset_all: false, counters: emptyCounters(), models: [] });
    assert.deepEqual((await store.load()).state, NAPI_STATE, "rewritten with a checksum, the same state");
  });

  it("no single-bit flip anywhere in a saved state is accepted as a different state", async () => {
    const frame = await compressState(NAPI_STATE);
    const altered: number[] = [];
    let refused = 0;
    for (let bit = 0; bit < frame.length * 8; bit++) {
      const flipped = Buffer.from(frame);
      flipped[bit >> 3] = (flipped[bit >> 3] as number) ^ (1 << (bit & 7));
      const decoded = await decompressState(flipped).catch(() => null);
      // A few bits change nothing the decoder reads (an unused header bit, padding); the checksum proves the content.
      if (decoded === null) refused++;
      else if (!isDeepStrictEqual(decoded, NAPI_STATE)) altered.push(bit);
    }
    assert.deepEqual(altered, [], "no flip alters the statistics");
    assert.ok(refused > frame.length * 8 * 0.95, `${refused} of ${frame.length * 8} flips refused`);
  });

  it("refuses content over the cap: from the declared size before decoding, and while decoding a frame that declares none", async () => {
    const bomb = await readFile(fixture("zeros-100MiB.zst")); // 3 KiB declaring 100 MiB
    await assert.rejects(zstdDecompress(bomb), /declares 104857600 bytes of content, over the limit of 67108864/);
    const undeclared = await readFile(fixture("zeros-3MiB-unknown-size.zst")); // streamed by `zstd`: no declared size
    assert.equal((await zstdDecompress(undeclared)).length, 3 * 1024 * 1024);
    await assert.rejects(zstdDecompress(undeclared, 1024 * 1024), /larger than the limit of 1048576 bytes/);
  });

  it("a failed decode leaves nothing behind: the next valid frame decodes", async () => {
    const valid = await compressState(NAPI_STATE);
    const corrupt = Buffer.from(valid);
    corrupt[corrupt.length - 1] = (corrupt[corrupt.length - 1] as number) ^ 0xff;
    await assert.rejects(zstdDecompress(corrupt), /zstd: checksum mismatch/);
    await assert.rejects(zstdDecompress(valid.subarray(0, 20)), /zstd: /);
    await assert.rejects(zstdDecompress(Buffer.from("not a zstd frame")), /not a zstd frame/);
    assert.deepEqual(await decompressState(valid), NAPI_STATE);
  });

  it("a decompression bomb as the state file is quarantined like any undecodable file", async (t) => {
    const dir = await tempDir(t);
    const store = new FileStateStore(dir, { now: () => Date.UTC(2026, 0, 1) });
    await copyFile(fixture("zeros-100MiB.zst"), store.path);
    const { state, warning } = await store.load();
    assert.equal(state, null);
    assert.match(
      warning ?? "",
      /could not be decoded \(zstd: the frame declares 104857600 bytes.*moved to .*\.corrupt-20260101T000000000Z/,
    );
  });
});

/**
 * zstd frames for the state file, on libzstd compiled to WebAssembly (`@bokuweb/zstd-wasm`): nothing to compile or
 * download at install time. Node 20 has no zstd in `node:zlib`.
 *
 * The library offers libzstd's one-shot API only, so two things are done here around it:
 * - **The content checksum.** `ZSTD_compress` writes frames without one; `zstdCompress` sets the frame header's
 *   Content_Checksum_flag and appends the checksum (the low 32 bits of XXH64 of the content, RFC 8878 §3.1.1), which is
 *   exactly what `zstd --check` writes. libzstd verifies it on decompression, so a flipped bit is corruption, not
 *   altered statistics.
 * - **An output cap.** The frame header's declared content size is read before anything is allocated; a frame that
 *   declares more than `maxBytes`, or (without a declared size) does not fit in it, is refused.
 * Every decode is one call of `ZSTD_decompress`, which makes and frees its own decoder context: a bad frame cannot
 * leave state behind for the next one.
 */
import { compress, decompress, init } from "@bokuweb/zstd-wasm";

/** Decompressed bytes a frame may hold at most, unless a caller asks for another cap. */
export const DEFAULT_MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024;
const MAGIC = 0xfd2fb528;
const CHECKSUM_FLAG = 0x04;

let ready: Promise<void> | undefined;

/** Instantiates the WebAssembly module once per process (it reads `zstd.wasm` next to the library). */
function initialized(): Promise<void> {
  ready ??= init().catch((error: unknown) => {
    ready = undefined;
    throw error;
  });
  return ready;
}

/** libzstd error codes (`ZSTD_ErrorCode`) the state file can meet, named as libzstd names them. */
const ZSTD_ERRORS: Record<number, string> = {
  10: "not a zstd frame (unknown prefix)",
  12: "unsupported zstd version",
  14: "unsupported frame parameter",
  16: "frame requires too much memory",
  20: "corrupted data",
  22: "checksum mismatch",
  70: "content larger than declared",
  72: "truncated or trailing data",
};

/** The library's error ("Failed to … with code -N") as one readable phrase. */
function zstdError(error: unknown): Error {
  const code = /code (-?\d+)/.exec((error as Error).message ?? "")?.[1];
  const name = code === undefined ? undefined : ZSTD_ERRORS[Math.abs(Number(code))];
  return new Error(name ? `zstd: ${name}` : `zstd: ${(error as Error).message}`, { cause: error });
}

interface FrameHeader {
  /** Offset of the Frame_Header_Descriptor byte. */
  descriptorOffset: number;
  /** The declared decompressed size, or null when the frame does not declare it. */
  contentSize: number | null;
}

/** Reads a zstd frame header (RFC 8878 §3.1.1.1); throws for anything that does not start with one. */
function frameHeader(frame: Uint8Array): FrameHeader {
  if (frame.length < 6) throw new Error(frame.length === 0 ? "the file is empty" : "zstd: truncated frame header");
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new Error("zstd: not a zstd frame (unknown prefix)");
  const descriptor = frame[4] as number;
  const singleSegment = (descriptor & 0x20) !== 0;
  const sizeFlag = descriptor >> 6;
  const dictionaryBytes = [0, 1, 2, 4][descriptor & 0x03] as number;
  const sizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][sizeFlag] as number;
  const sizeOffset = 5 + (singleSegment ? 0 : 1) + dictionaryBytes;
  if (frame.length < sizeOffset + sizeBytes) throw new Error("zstd: truncated frame header");
  let contentSize: number | null = null;
  if (sizeBytes === 1) contentSize = view.getUint8(sizeOffset);
  else if (sizeBytes === 2) contentSize = view.getUint16(sizeOffset, true) + 256;
  else if (sizeBytes === 4) contentSize = view.getUint32(sizeOffset, true);
  else if (sizeBytes === 8) contentSize = Number(view.getBigUint64(sizeOffset, true));
  return { descriptorOffset: 4, contentSize };
}

/**
 * One zstd frame of `data` at `level`, declaring its content size and carrying the content checksum, as
 * `zstd -<level> --check` writes it.
 */
export async function zstdCompress(data: Uint8Array, level: number): Promise<Buffer> {
  await initialized();
  let frame: Uint8Array;
  try {
    frame = compress(data, level);
  } catch (error) {
    throw zstdError(error);
  }
  const { descriptorOffset } = frameHeader(frame);
  const out = Buffer.alloc(frame.length + 4);
  out.set(frame);
  out[descriptorOffset] = (out[descriptorOffset] as number) | CHECKSUM_FLAG;
  out.writeUInt32LE(Number(xxh64(data) & 0xffffffffn), frame.length);
  return out;
}

/**
 * The content of one zstd frame. Throws (with libzstd's reason) for a foreign, truncated or corrupted frame, a
 * checksum mismatch, and content over `maxBytes` (checked against the header before decoding).
 */
export async function zstdDecompress(
  frame: Uint8Array,
  maxBytes: number = DEFAULT_MAX_DECOMPRESSED_BYTES,
): Promise<Uint8Array> {
  const { contentSize } = frameHeader(frame);
  if (contentSize !== null && contentSize > maxBytes) {
    throw new Error(`zstd: the frame declares ${contentSize} bytes of content, over the limit of ${maxBytes}`);
  }
  await initialized();
  // Without a declared size, grow the output buffer by doubling until the content fits or the cap is reached.
  let capacity = contentSize ?? Math.min(maxBytes, Math.max(64 * 1024, frame.length * 8));
  for (;;) {
    try {
      return decompress(frame, { defaultHeapSize: capacity });
    } catch (error) {
      const tooSmall = /code -70\b/.test((error as Error).message ?? "");
      if (!tooSmall || contentSize !== null) throw zstdError(error);
      if (capacity >= maxBytes) throw new Error(`zstd: the content is larger than the limit of ${maxBytes} bytes`);
      capacity = Math.min(maxBytes, capacity * 2);
    }
  }
}

const MASK = (1n << 64n) - 1n;
const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;
const P5 = 0x27d4eb2f165667c5n;

const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (64n - r))) & MASK;
const round = (acc: bigint, input: bigint) => (rotl((acc + input * P2) & MASK, 31n) * P1) & MASK;
const merge = (acc: bigint, value: bigint) => ((acc ^ round(0n, value)) * P1 + P4) & MASK;

/** XXH64 with seed 0 (the hash zstd's content checksum takes the low 32 bits of). BigInt: state files are small. */
export function xxh64(data: Uint8Array): bigint {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const length = data.length;
  let offset = 0;
  let h: bigint;
  if (length >= 32) {
    let v1 = (P1 + P2) & MASK;
    let v2 = P2;
    let v3 = 0n;
    let v4 = (MASK + 1n - P1) & MASK;
    for (; offset + 32 <= length; offset += 32) {
      v1 = round(v1, view.getBigUint64(offset, true));
      v2 = round(v2, view.getBigUint64(offset + 8, true));
      v3 = round(v3, view.getBigUint64(offset + 16, true));
      v4 = round(v4, view.getBigUint64(offset + 24, true));
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & MASK;
    h = merge(merge(merge(merge(h, v1), v2), v3), v4);
  } else {
    h = P5;
  }
  h = (h + BigInt(length)) & MASK;
  for (; offset + 8 <= length; offset += 8) {
    h ^= round(0n, view.getBigUint64(offset, true));
    h = (rotl(h, 27n) * P1 + P4) & MASK;
  }
  if (offset + 4 <= length) {
    h ^= (BigInt(view.getUint32(offset, true)) * P1) & MASK;
    h = (rotl(h, 23n) * P2 + P3) & MASK;
    offset += 4;
  }
  for (; offset < length; offset++) {
    h ^= (BigInt(data[offset] as number) * P5) & MASK;
    h = (rotl(h, 11n) * P1) & MASK;
  }
  h ^= h >> 33n;
  h = (h * P2) & MASK;
  h ^= h >> 29n;
  h = (h * P3) & MASK;
  h ^= h >> 32n;
  return h;
}

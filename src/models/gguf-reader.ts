/**
 * GGUF headers, read without the weights: the ggml constants (value types, tensor types with their block layout,
 * llama.cpp's file-type names — numbers from ggml's `gguf.h` / `ggml.h` and `llama.h`) that the reader and the
 * tiny-model writer share; a buffered file cursor that reads only the bytes a header parser needs — a 7 GB model's
 * header is a few MB — and skips the rest (the ONNX reader walks with it too); and the header reader itself, which
 * validates what a loader would trip over later — magic, version, a header that ends early, tensor data reaching past
 * the end of the file — and says which one, with the offsets involved.
 */
import { type FileHandle, open } from "node:fs/promises";
import { ModelInvalid } from "../errors/index.js";
import type { Bytes, GgufMetadata } from "./types.js";
import { MIB } from "../units.js";

// ---------------------------------------------------------------------------------------------------------------------
// ggml constants, shared with the tiny-model writer

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_SUPPORTED_VERSIONS: readonly number[] = [2, 3];
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types of GGUF. */
export const enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** A fixed-size metadata value type: its byte width, and how it is read from and written as little-endian bytes. */
export interface GgufScalar {
  size: number;
  read(bytes: Buffer): number | bigint | boolean;
  /** Writes `value` at `at` (a bool as 1 or 0; a 64-bit integer from a safe integer). */
  write(bytes: Buffer, value: number, at: number): void;
}

/** Each fixed-size metadata value type, read by the header reader and written by the tiny-model writer. */
export const GGUF_SCALARS: Readonly<Partial<Record<number, GgufScalar>>> = {
  [GgufValueType.UINT8]: { size: 1, read: (b) => b.readUInt8(0), write: (b, v, at) => b.writeUInt8(v, at) },
  [GgufValueType.INT8]: { size: 1, read: (b) => b.readInt8(0), write: (b, v, at) => b.writeInt8(v, at) },
  [GgufValueType.UINT16]: { size: 2, read: (b) => b.readUInt16LE(0), write: (b, v, at) => b.writeUInt16LE(v, at) },
  [GgufValueType.INT16]: { size: 2, read: (b) => b.readInt16LE(0), write: (b, v, at) => b.writeInt16LE(v, at) },
  [GgufValueType.UINT32]: { size: 4, read: (b) => b.readUInt32LE(0), write: (b, v, at) => b.writeUInt32LE(v, at) },
  [GgufValueType.INT32]: { size: 4, read: (b) => b.readInt32LE(0), write: (b, v, at) => b.writeInt32LE(v, at) },
  [GgufValueType.FLOAT32]: { size: 4, read: (b) => b.readFloatLE(0), write: (b, v, at) => b.writeFloatLE(v, at) },
  [GgufValueType.BOOL]: { size: 1, read: (b) => b.readUInt8(0) !== 0, write: (b, v, at) => b.writeUInt8(v, at) },
  [GgufValueType.UINT64]: {
    size: 8,
    read: (b) => b.readBigUInt64LE(0),
    write: (b, v, at) => b.writeBigUInt64LE(BigInt(v), at),
  },
  [GgufValueType.INT64]: {
    size: 8,
    read: (b) => b.readBigInt64LE(0),
    write: (b, v, at) => b.writeBigInt64LE(BigInt(v), at),
  },
  [GgufValueType.FLOAT64]: { size: 8, read: (b) => b.readDoubleLE(0), write: (b, v, at) => b.writeDoubleLE(v, at) },
};

export interface GgmlTypeInfo {
  name: string;
  /** Elements per block. */
  blockSize: number;
  /** Bytes per block. */
  typeSize: number;
}

/** ggml tensor types by id: how many bytes a row of n elements takes is n / blockSize × typeSize. */
export const GGML_TYPES: Readonly<Record<number, GgmlTypeInfo>> = {
  0: { name: "F32", blockSize: 1, typeSize: 4 },
  1: { name: "F16", blockSize: 1, typeSize: 2 },
  2: { name: "Q4_0", blockSize: 32, typeSize: 18 },
  3: { name: "Q4_1", blockSize: 32, typeSize: 20 },
  6: { name: "Q5_0", blockSize: 32, typeSize: 22 },
  7: { name: "Q5_1", blockSize: 32, typeSize: 24 },
  8: { name: "Q8_0", blockSize: 32, typeSize: 34 },
  9: { name: "Q8_1", blockSize: 32, typeSize: 36 },
  10: { name: "Q2_K", blockSize: 256, typeSize: 84 },
  11: { name: "Q3_K", blockSize: 256, typeSize: 110 },
  12: { name: "Q4_K", blockSize: 256, typeSize: 144 },
  13: { name: "Q5_K", blockSize: 256, typeSize: 176 },
  14: { name: "Q6_K", blockSize: 256, typeSize: 210 },
  15: { name: "Q8_K", blockSize: 256, typeSize: 292 },
  16: { name: "IQ2_XXS", blockSize: 256, typeSize: 66 },
  17: { name: "IQ2_XS", blockSize: 256, typeSize: 74 },
  18: { name: "IQ3_XXS", blockSize: 256, typeSize: 98 },
  19: { name: "IQ1_S", blockSize: 256, typeSize: 50 },
  20: { name: "IQ4_NL", blockSize: 32, typeSize: 18 },
  21: { name: "IQ3_S", blockSize: 256, typeSize: 110 },
  22: { name: "IQ2_S", blockSize: 256, typeSize: 82 },
  23: { name: "IQ4_XS", blockSize: 256, typeSize: 136 },
  24: { name: "I8", blockSize: 1, typeSize: 1 },
  25: { name: "I16", blockSize: 1, typeSize: 2 },
  26: { name: "I32", blockSize: 1, typeSize: 4 },
  27: { name: "I64", blockSize: 1, typeSize: 8 },
  28: { name: "F64", blockSize: 1, typeSize: 8 },
  29: { name: "IQ1_M", blockSize: 256, typeSize: 56 },
  30: { name: "BF16", blockSize: 1, typeSize: 2 },
  34: { name: "TQ1_0", blockSize: 256, typeSize: 54 },
  35: { name: "TQ2_0", blockSize: 256, typeSize: 66 },
  39: { name: "MXFP4", blockSize: 32, typeSize: 17 },
};

/** The ggml tensor types the tiny-model writer can produce. */
export const GGML_TYPE_IDS = { f32: 0, f16: 1, q4_0: 2, q8_0: 8 } as const;

/** llama.cpp's `general.file_type` values (`llama_ftype`), named as `llama-quantize` names them. */
export const LLAMA_FILE_TYPES: Readonly<Record<number, string>> = {
  0: "F32",
  1: "F16",
  2: "Q4_0",
  3: "Q4_1",
  7: "Q8_0",
  8: "Q5_0",
  9: "Q5_1",
  10: "Q2_K",
  11: "Q3_K_S",
  12: "Q3_K_M",
  13: "Q3_K_L",
  14: "Q4_K_S",
  15: "Q4_K_M",
  16: "Q5_K_S",
  17: "Q5_K_M",
  18: "Q6_K",
  19: "IQ2_XXS",
  20: "IQ2_XS",
  21: "Q2_K_S",
  22: "IQ3_XS",
  23: "IQ3_XXS",
  24: "IQ1_S",
  25: "IQ4_NL",
  26: "IQ3_S",
  27: "IQ3_M",
  28: "IQ2_S",
  29: "IQ2_M",
  30: "IQ4_XS",
  31: "IQ1_M",
  32: "BF16",
  36: "TQ1_0",
  37: "TQ2_0",
  38: "MXFP4_MOE",
};

/** The `general.file_type` for files whose weights are all of one writer type. */
export const FILE_TYPE_OF_WRITER_TYPE = { f32: 0, f16: 1, q4_0: 2, q8_0: 7 } as const;

/** Bytes of a tensor of `elements` elements of ggml type `type`, or undefined for an unknown type. */
export function tensorByteSize(type: number, elements: number): number | undefined {
  const info = GGML_TYPES[type];
  if (!info) return undefined;
  return Math.ceil(elements / info.blockSize) * info.typeSize;
}

// ---------------------------------------------------------------------------------------------------------------------
// The file cursor: buffered reads at a moving position (the ONNX reader walks with it too)

/** A read went past the end of the data. Parsers turn it into a "truncated" ModelInvalid. */
export class EndOfData extends Error {
  constructor(
    readonly position: number,
    readonly wanted: number,
    readonly size: number,
  ) {
    super(`needed ${wanted} bytes at offset ${position}, but the data ends at ${size}`);
  }
}

const BLOCK = 64 * 1024;

export class FileCursor {
  position = 0;
  private block: Buffer = Buffer.alloc(0);
  private blockStart = 0;

  private constructor(
    private readonly handle: FileHandle | null,
    readonly size: number,
    initial?: Buffer,
  ) {
    if (initial) this.block = initial;
  }

  static async open(path: string): Promise<FileCursor> {
    const handle = await open(path, "r");
    try {
      const { size } = await handle.stat();
      return new FileCursor(handle, size);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  static fromBuffer(buffer: Buffer): FileCursor {
    return new FileCursor(null, buffer.length, buffer);
  }

  get remaining(): number {
    return this.size - this.position;
  }

  /** The next `n` bytes, advancing past them. The returned buffer may share memory with the cursor's block. */
  async bytes(n: number): Promise<Buffer> {
    if (n < 0 || this.position + n > this.size) throw new EndOfData(this.position, n, this.size);
    const offset = this.position - this.blockStart;
    if (offset < 0 || offset + n > this.block.length) await this.fill(n);
    const start = this.position - this.blockStart;
    this.position += n;
    return this.block.subarray(start, start + n);
  }

  /** Moves forward `n` bytes without reading them. */
  skip(n: number): void {
    if (n < 0 || this.position + n > this.size) throw new EndOfData(this.position, n, this.size);
    this.position += n;
  }

  seek(position: number): void {
    if (position < 0 || position > this.size) throw new EndOfData(position, 0, this.size);
    this.position = position;
  }

  private async fill(n: number): Promise<void> {
    if (!this.handle) throw new EndOfData(this.position, n, this.size);
    const length = Math.min(Math.max(n, BLOCK), this.size - this.position);
    const buffer = Buffer.alloc(length);
    let read = 0;
    while (read < length) {
      const { bytesRead } = await this.handle.read(buffer, read, length - read, this.position + read);
      if (bytesRead === 0) throw new EndOfData(this.position + read, length - read, this.position + read);
      read += bytesRead;
    }
    this.block = buffer;
    this.blockStart = this.position;
  }

  async u8(): Promise<number> {
    return (await this.bytes(1)).readUInt8(0);
  }
  async u32(): Promise<number> {
    return (await this.bytes(4)).readUInt32LE(0);
  }
  /** A u64 as a number; throws RangeError above 2^53 (no real header field gets near it). */
  async u64(): Promise<number> {
    const value = (await this.bytes(8)).readBigUInt64LE(0);
    if (value > BigInt(Number.MAX_SAFE_INTEGER))
      throw new RangeError(`64-bit value ${value} at offset ${this.position - 8} is implausibly large`);
    return Number(value);
  }

  async close(): Promise<void> {
    await this.handle?.close();
  }
}

/** ModelInvalid for a file the system refuses to read (permissions, a directory, I/O error). */
export function unreadable(path: string, error: unknown): ModelInvalid {
  const code = (error as NodeJS.ErrnoException).code;
  const problem =
    code === "EISDIR"
      ? "it is a directory, not a model file"
      : `the file cannot be read (${code ?? (error as Error).message})`;
  return new ModelInvalid(`${path} is not a valid model: ${problem}`, { cause: error, details: { path, problem } });
}

/**
 * Opens the model file at `path`, parses its header with `parse` and closes it. Every failure becomes a ModelInvalid:
 * an empty file says so, `classify` names format-specific problems (truncation, corrupt fields) in the format's own
 * words, and anything else is an unreadable file.
 */
export async function readHeaderFile<T>(
  path: string,
  invalid: (problem: string, details?: Record<string, unknown>) => ModelInvalid,
  parse: (cursor: FileCursor) => Promise<T>,
  classify: (error: unknown, cursor: FileCursor) => ModelInvalid | undefined,
): Promise<T> {
  let cursor: FileCursor;
  try {
    cursor = await FileCursor.open(path);
  } catch (error) {
    throw unreadable(path, error);
  }
  try {
    if (cursor.size === 0) throw invalid("the file is empty");
    return await parse(cursor);
  } catch (error) {
    if (error instanceof ModelInvalid) throw error;
    throw classify(error, cursor) ?? unreadable(path, error);
  } finally {
    await cursor.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// The GGUF header reader

/** A metadata value. Arrays keep only their length and element type: token lists can hold 250k strings. */
export type GgufHeaderValue = number | bigint | boolean | string | { arrayOf: number; length: number };

export interface GgufTensorInfo {
  name: string;
  dims: number[];
  type: number;
  /** Offset of the tensor's data from the start of the data section. */
  offset: number;
  bytes: Bytes;
}

export interface GgufHeader {
  version: number;
  metadata: Map<string, GgufHeaderValue>;
  tensors: GgufTensorInfo[];
  /** File offset where tensor data starts. */
  dataOffset: number;
  fileSize: Bytes;
}

/** Counts above these are not a model but a corrupt header; refusing early avoids allocating for garbage. */
const MAX_COUNT = 10_000_000;
const MAX_STRING = 256 * MIB;
const MAX_DIMS = 8;

function invalid(path: string, problem: string, details: Record<string, unknown> = {}): ModelInvalid {
  return new ModelInvalid(`${path} is not a valid GGUF model: ${problem}`, { details: { path, problem, ...details } });
}

async function readString(cursor: FileCursor, what: string): Promise<string> {
  const length = await cursor.u64();
  if (length > MAX_STRING) throw new RangeError(`${what} claims a string of ${length} bytes`);
  return (await cursor.bytes(length)).toString("utf8");
}

async function readScalar(cursor: FileCursor, scalar: GgufScalar): Promise<number | bigint | boolean> {
  return scalar.read(await cursor.bytes(scalar.size));
}

/**
 * The strings of one length in a string array, handed to a reader that wants them (the vocabulary's `<0x00>`..`<0xFF>`,
 * six bytes each); strings of any other length are skipped unread.
 */
interface ShortStrings {
  bytes: number;
  visit(piece: Buffer): void;
}

async function skipArray(cursor: FileCursor, key: string, strings?: ShortStrings): Promise<GgufHeaderValue> {
  const elementType = await cursor.u32();
  const length = await cursor.u64();
  if (length > MAX_COUNT * 100) throw new RangeError(`array ${key} claims ${length} elements`);
  if (elementType === GgufValueType.STRING) {
    for (let i = 0; i < length; i++) {
      const bytes = await cursor.u64();
      if (strings && bytes === strings.bytes) strings.visit(await cursor.bytes(bytes));
      else cursor.skip(bytes);
    }
  } else if (elementType === GgufValueType.ARRAY) {
    for (let i = 0; i < length; i++) await skipArray(cursor, key);
  } else {
    const scalar = GGUF_SCALARS[elementType];
    if (scalar === undefined) throw new TypeError(`array ${key} has unknown element type ${elementType}`);
    cursor.skip(scalar.size * length);
  }
  return { arrayOf: elementType, length };
}

async function readValue(cursor: FileCursor, key: string, strings?: ShortStrings): Promise<GgufHeaderValue> {
  const type = await cursor.u32();
  if (type === GgufValueType.STRING) return readString(cursor, key);
  if (type === GgufValueType.ARRAY) return skipArray(cursor, key, strings);
  const scalar = GGUF_SCALARS[type];
  if (scalar === undefined) throw new TypeError(`metadata key ${key} has unknown value type ${type}`);
  return readScalar(cursor, scalar);
}

async function readTensorInfo(cursor: FileCursor): Promise<GgufTensorInfo> {
  const name = await readString(cursor, "tensor name");
  const dimCount = await cursor.u32();
  if (dimCount === 0 || dimCount > MAX_DIMS) throw new RangeError(`tensor ${name} has ${dimCount} dimensions`);
  const dims: number[] = [];
  for (let i = 0; i < dimCount; i++) dims.push(await cursor.u64());
  const type = await cursor.u32();
  const offset = await cursor.u64();
  const bytes = tensorByteSize(
    type,
    dims.reduce((a, b) => a * b, 1),
  );
  if (bytes === undefined) throw new TypeError(`tensor ${name} has unknown ggml type ${type}`);
  return { name, dims, type, offset, bytes };
}

/** Reads and checks the header of the GGUF file at `path`. Throws ModelInvalid naming the problem. */
export function readGgufHeader(path: string): Promise<GgufHeader> {
  return readHeaderFile(
    path,
    (problem, details) => invalid(path, problem, details),
    (cursor) => parse(path, cursor),
    (error, cursor) => {
      if (error instanceof EndOfData) {
        return invalid(path, `truncated: the header ends at byte ${cursor.size} while more was expected`, {
          fileSize: cursor.size,
        });
      }
      if (error instanceof RangeError || error instanceof TypeError)
        return invalid(path, `corrupt header: ${error.message}`);
      return undefined;
    },
  );
}

const TOKENS_KEY = "tokenizer.ggml.tokens";
/** How llama.cpp spells a SentencePiece byte token: `byte_to_token` looks up `<0x%02X>` by text, not by token type. */
const BYTE_TOKEN = /^<0x[0-9A-F]{2}>$/;

/**
 * Refuses a SentencePiece vocabulary (`tokenizer.ggml.model` "llama") without a single byte token. llama.cpp's SPM
 * tokenizer spells a character no piece covers as byte tokens (`resegment` → `byte_to_token`), and when `<0xXX>` is
 * missing it falls back to `token_to_id.at` of the raw byte, whose `std::out_of_range` aborts the whole process —
 * on a chat template's `<` as much as on a user's emoji. Other tokenizers are not affected: BPE ("gpt2") vocabularies
 * are byte-level and skip a byte they lack, and UGM ("t5") maps unknown characters to its unknown token. A vocabulary
 * with only some byte tokens is let through: it aborts only on the bytes it lacks, which no real model was seen to do.
 */
function checkByteFallback(path: string, metadata: ReadonlyMap<string, GgufHeaderValue>, byteTokens: number): void {
  const tokens = metadata.get(TOKENS_KEY);
  if (metadata.get("tokenizer.ggml.model") !== "llama" || typeof tokens !== "object" || byteTokens > 0) return;
  throw invalid(
    path,
    'its SentencePiece ("llama") vocabulary has no byte tokens (<0x00>..<0xFF>), so llama.cpp aborts the whole ' +
      'process on any character outside the vocabulary (a chat template\'s "<" is enough); convert the model ' +
      "again with its tokenizer's byte fallback, or use another build of it",
    { reason: "no_byte_tokens", tokenizer: "llama", vocabularySize: tokens.length },
  );
}

async function parse(path: string, cursor: FileCursor): Promise<GgufHeader> {
  if (cursor.size < 4) throw invalid(path, `truncated: only ${cursor.size} bytes`);
  const magic = await cursor.bytes(4);
  if (magic.readUInt32LE(0) !== GGUF_MAGIC) {
    throw invalid(
      path,
      `wrong magic ${JSON.stringify(magic.toString("latin1"))} (0x${magic.toString("hex")}), expected "GGUF"`,
    );
  }
  const version = await cursor.u32();
  if (!GGUF_SUPPORTED_VERSIONS.includes(version)) {
    throw invalid(path, `unsupported GGUF version ${version} (supported: ${GGUF_SUPPORTED_VERSIONS.join(", ")})`, {
      version,
    });
  }
  const tensorCount = await cursor.u64();
  const kvCount = await cursor.u64();
  if (tensorCount > MAX_COUNT || kvCount > MAX_COUNT) {
    throw invalid(path, `corrupt header: ${tensorCount} tensors and ${kvCount} metadata entries`);
  }
  const metadata = new Map<string, GgufHeaderValue>();
  let byteTokens = 0;
  const countByteTokens: ShortStrings = {
    bytes: 6,
    visit: (piece) => {
      if (BYTE_TOKEN.test(piece.toString("latin1"))) byteTokens++;
    },
  };
  for (let i = 0; i < kvCount; i++) {
    const key = await readString(cursor, "metadata key");
    metadata.set(key, await readValue(cursor, key, key === TOKENS_KEY ? countByteTokens : undefined));
  }
  checkByteFallback(path, metadata, byteTokens);
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < tensorCount; i++) tensors.push(await readTensorInfo(cursor));
  const alignmentValue = metadata.get("general.alignment");
  const alignment = typeof alignmentValue === "number" && alignmentValue > 0 ? alignmentValue : GGUF_DEFAULT_ALIGNMENT;
  const dataOffset = Math.ceil(cursor.position / alignment) * alignment;
  for (const tensor of tensors) {
    const end = dataOffset + tensor.offset + tensor.bytes;
    if (end > cursor.size) {
      throw invalid(
        path,
        `truncated: tensor ${tensor.name} ends at byte ${end} but the file has ${cursor.size} bytes`,
        {
          tensor: tensor.name,
          tensorEnd: end,
          fileSize: cursor.size,
        },
      );
    }
  }
  return { version, metadata, tensors, dataOffset, fileSize: cursor.size };
}

function numberOf(value: GgufHeaderValue | undefined): number | undefined {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  return undefined;
}

/** The most common tensor type among matrices, when a file has no `general.file_type`. */
function dominantTensorType(tensors: readonly GgufTensorInfo[]): string {
  const bytesByType = new Map<number, number>();
  for (const t of tensors) if (t.dims.length > 1) bytesByType.set(t.type, (bytesByType.get(t.type) ?? 0) + t.bytes);
  const [type] = [...bytesByType.entries()].sort((a, b) => b[1] - a[1])[0] ?? [0];
  return GGML_TYPES[type]?.name ?? `type ${type}`;
}

/** The summary the rest of Inferno uses (`models info`, memory estimates). */
export function ggufMetadata(header: GgufHeader): GgufMetadata {
  const m = header.metadata;
  const architecture =
    typeof m.get("general.architecture") === "string" ? (m.get("general.architecture") as string) : "unknown";
  const arch = (key: string) => numberOf(m.get(`${architecture}.${key}`)) ?? 0;
  const fileType = numberOf(m.get("general.file_type"));
  const tokens = m.get("tokenizer.ggml.tokens");
  const name = m.get("general.name");
  const headCount = arch("attention.head_count");
  return {
    format: "gguf",
    version: header.version,
    architecture,
    ...(typeof name === "string" ? { modelName: name } : {}),
    parameterCount: header.tensors.reduce((sum, t) => sum + t.dims.reduce((a, b) => a * b, 1), 0),
    quantization:
      fileType === undefined
        ? dominantTensorType(header.tensors)
        : (LLAMA_FILE_TYPES[fileType] ?? `file type ${fileType}`),
    contextLength: arch("context_length"),
    embeddingLength: arch("embedding_length"),
    blockCount: arch("block_count"),
    headCount,
    headCountKv: numberOf(m.get(`${architecture}.attention.head_count_kv`)) ?? headCount,
    vocabularySize: typeof tokens === "object" ? tokens.length : arch("vocab_size"),
    tensorCount: header.tensors.length,
    tensorBytes: header.tensors.reduce((sum, t) => sum + t.bytes, 0),
    hasChatTemplate: typeof m.get("tokenizer.chat_template") === "string",
  };
}

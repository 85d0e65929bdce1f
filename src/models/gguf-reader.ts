/**
 * A header-only GGUF reader: metadata and tensor descriptions, never the weights. It validates what a loader would trip
 * over later — magic, version, a header that ends early, tensor data reaching past the end of the file — and says which
 * one, with the offsets involved.
 */
import { ModelInvalid } from "../errors/index.js";
import { EndOfData, type FileCursor, readHeaderFile } from "./file-cursor.js";
import {
  GGML_TYPES,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_SCALAR_SIZES,
  GGUF_SUPPORTED_VERSIONS,
  GgufValueType,
  LLAMA_FILE_TYPES,
  tensorByteSize,
} from "./ggml.js";
import type { Bytes, GgufMetadata } from "./types.js";
import { MIB } from "../units.js";

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

async function readScalar(cursor: FileCursor, type: number): Promise<number | bigint | boolean> {
  const b = await cursor.bytes(GGUF_SCALAR_SIZES[type] as number);
  switch (type) {
    case GgufValueType.UINT8:
      return b.readUInt8(0);
    case GgufValueType.INT8:
      return b.readInt8(0);
    case GgufValueType.UINT16:
      return b.readUInt16LE(0);
    case GgufValueType.INT16:
      return b.readInt16LE(0);
    case GgufValueType.UINT32:
      return b.readUInt32LE(0);
    case GgufValueType.INT32:
      return b.readInt32LE(0);
    case GgufValueType.FLOAT32:
      return b.readFloatLE(0);
    case GgufValueType.BOOL:
      return b.readUInt8(0) !== 0;
    case GgufValueType.UINT64:
      return b.readBigUInt64LE(0);
    case GgufValueType.INT64:
      return b.readBigInt64LE(0);
    default:
      return b.readDoubleLE(0);
  }
}

async function skipArray(cursor: FileCursor, key: string): Promise<GgufHeaderValue> {
  const elementType = await cursor.u32();
  const length = await cursor.u64();
  if (length > MAX_COUNT * 100) throw new RangeError(`array ${key} claims ${length} elements`);
  if (elementType === GgufValueType.STRING) {
    for (let i = 0; i < length; i++) cursor.skip(await cursor.u64());
  } else if (elementType === GgufValueType.ARRAY) {
    for (let i = 0; i < length; i++) await skipArray(cursor, key);
  } else {
    const size = GGUF_SCALAR_SIZES[elementType];
    if (size === undefined) throw new TypeError(`array ${key} has unknown element type ${elementType}`);
    cursor.skip(size * length);
  }
  return { arrayOf: elementType, length };
}

async function readValue(cursor: FileCursor, key: string): Promise<GgufHeaderValue> {
  const type = await cursor.u32();
  if (type === GgufValueType.STRING) return readString(cursor, key);
  if (type === GgufValueType.ARRAY) return skipArray(cursor, key);
  if (GGUF_SCALAR_SIZES[type] === undefined) throw new TypeError(`metadata key ${key} has unknown value type ${type}`);
  return readScalar(cursor, type);
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
  for (let i = 0; i < kvCount; i++) {
    const key = await readString(cursor, "metadata key");
    metadata.set(key, await readValue(cursor, key));
  }
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

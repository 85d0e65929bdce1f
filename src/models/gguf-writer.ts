/**
 * A small GGUF v3 writer and the tiny-llama generator built on it: a deterministic, seeded, random-weight llama model
 * that llama.cpp loads and generates from. Tests, `inferno models demo` and the server's first run use it, so Inferno
 * never needs to download a model to show that it works.
 */
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { writeFileAtomic } from "../fs/atomic-write.js";
import {
  FILE_TYPE_OF_WRITER_TYPE,
  GGML_TYPE_IDS,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_SCALARS,
  type GgufScalar,
  GgufValueType,
  tensorByteSize,
} from "./gguf-reader.js";
import type { Bytes } from "./types.js";

/**
 * Weight types the writer can produce. `q8_0` and `q4_0` need every row length to be a multiple of 32. `q4_0` is a type
 * llama.cpp repacks on many CPUs at load (a second copy of the weights), which the mmap measurement needs.
 */
export type TinyWeightType = keyof typeof GGML_TYPE_IDS;

/** A metadata value with its GGUF type spelled out, so numbers are written with the width llama.cpp expects. */
export type GgufValue =
  | { type: "u16"; value: number }
  | { type: "u32"; value: number }
  | { type: "i32"; value: number }
  | { type: "f32"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "string[]"; value: readonly string[] }
  | { type: "f32[]"; value: readonly number[] }
  | { type: "i32[]"; value: readonly number[] };

export interface GgufTensor {
  name: string;
  /** ggml order: `dims[0]` is the row length (the fastest-varying dimension). */
  dims: readonly number[];
  type: TinyWeightType;
  data: Float32Array;
}

// ---------------------------------------------------------------------------------------------------------------------
// Encoding

/** Grows a byte buffer as values are appended (little-endian, as GGUF is). */
class ByteSink {
  private buffer = Buffer.alloc(1 << 16);
  length = 0;

  private reserve(n: number): number {
    if (this.length + n > this.buffer.length) {
      const next = Buffer.alloc(Math.max(this.buffer.length * 2, this.length + n));
      this.buffer.copy(next, 0, 0, this.length);
      this.buffer = next;
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  /** Appends a fixed-size value of GGUF type `type` (see `GGUF_SCALARS`). */
  scalar(type: GgufValueType, value: number): void {
    const { size, write } = GGUF_SCALARS[type] as GgufScalar;
    // Reserve first: it may replace the buffer with a larger one.
    const at = this.reserve(size);
    write(this.buffer, value, at);
  }
  u32(v: number): void {
    this.scalar(GgufValueType.UINT32, v);
  }
  u64(v: number): void {
    this.scalar(GgufValueType.UINT64, v);
  }
  bytes(b: Uint8Array): void {
    const at = this.reserve(b.length);
    this.buffer.set(b, at);
  }
  string(s: string): void {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.bytes(b);
  }
  padTo(alignment: number): void {
    const pad = (alignment - (this.length % alignment)) % alignment;
    this.reserve(pad); // the buffer is zero-filled
  }
  result(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

/** A metadata value type the writer takes, not an array: an array's elements have the type its name starts with. */
type ItemType = Exclude<GgufValue["type"], `${string}[]`>;

/** The GGUF type of each. */
const VALUE_TYPE: Record<ItemType, GgufValueType> = {
  u16: GgufValueType.UINT16,
  u32: GgufValueType.UINT32,
  i32: GgufValueType.INT32,
  f32: GgufValueType.FLOAT32,
  bool: GgufValueType.BOOL,
  string: GgufValueType.STRING,
};

function writeItem(sink: ByteSink, type: ItemType, value: number | boolean | string): void {
  // A bool is written as 1 or 0.
  if (type === "string") sink.string(value as string);
  else sink.scalar(VALUE_TYPE[type], Number(value));
}

function writeValue(sink: ByteSink, v: GgufValue): void {
  if (v.type === "string[]" || v.type === "f32[]" || v.type === "i32[]") {
    const element = v.type.slice(0, -2) as ItemType;
    sink.u32(GgufValueType.ARRAY);
    sink.u32(VALUE_TYPE[element]);
    sink.u64(v.value.length);
    for (const item of v.value) writeItem(sink, element, item);
    return;
  }
  sink.u32(VALUE_TYPE[v.type]);
  writeItem(sink, v.type, v.value);
}

/** IEEE 754 half precision bits of a float (round to nearest even), for f16 weights and q8_0 scales. */
export function toHalf(value: number): number {
  const f32 = new Float32Array([value]);
  const bits = new Uint32Array(f32.buffer)[0] as number;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = ((bits >>> 23) & 0xff) - 127 + 15;
  let mantissa = bits & 0x7fffff;
  if (exponent >= 0x1f) return sign | 0x7c00; // overflow → infinity (weights here never get near it)
  if (exponent <= 0) {
    if (exponent < -10) return sign; // too small → signed zero
    mantissa |= 0x800000;
    const shift = 14 - exponent;
    const half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    return sign | (half + (rest > halfway || (rest === halfway && (half & 1) === 1) ? 1 : 0));
  }
  const half = (exponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  return sign | (half + (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1) ? 1 : 0));
}

const Q8_BLOCK = 32;

function encodeTensor(tensor: GgufTensor): Uint8Array {
  const { data, type } = tensor;
  if (type === "f32") return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (type === "f16") {
    const out = Buffer.alloc(data.length * 2);
    for (let i = 0; i < data.length; i++) out.writeUInt16LE(toHalf(data[i] as number), i * 2);
    return out;
  }
  if (type === "q4_0") return encodeQ4(data);
  // q8_0: blocks of 32 values, each an f16 scale followed by 32 signed bytes.
  const out = Buffer.alloc((data.length / Q8_BLOCK) * 34);
  for (let block = 0; block < data.length / Q8_BLOCK; block++) {
    let amax = 0;
    for (let i = 0; i < Q8_BLOCK; i++) amax = Math.max(amax, Math.abs(data[block * Q8_BLOCK + i] as number));
    const scale = amax / 127;
    const inverse = scale === 0 ? 0 : 1 / scale;
    out.writeUInt16LE(toHalf(scale), block * 34);
    for (let i = 0; i < Q8_BLOCK; i++) {
      out.writeInt8(Math.round((data[block * Q8_BLOCK + i] as number) * inverse), block * 34 + 2 + i);
    }
  }
  return out;
}

/**
 * q4_0, as llama.cpp quantizes it: blocks of 32 values, each an f16 scale d (the value of largest magnitude / -8)
 * followed by 16 bytes of 4-bit codes q = round(x / d) + 8, value j in the low nibble of byte j, value j + 16 in its
 * high nibble.
 */
function encodeQ4(data: Float32Array): Uint8Array {
  const out = Buffer.alloc((data.length / Q8_BLOCK) * 18);
  for (let block = 0; block < data.length / Q8_BLOCK; block++) {
    const base = block * Q8_BLOCK;
    let max = 0;
    for (let i = 0; i < Q8_BLOCK; i++) {
      const x = data[base + i] as number;
      if (Math.abs(x) > Math.abs(max)) max = x;
    }
    const d = max / -8;
    const inverse = d === 0 ? 0 : 1 / d;
    out.writeUInt16LE(toHalf(d), block * 18);
    for (let j = 0; j < Q8_BLOCK / 2; j++) {
      const low = Math.min(15, Math.floor((data[base + j] as number) * inverse + 8.5));
      const high = Math.min(15, Math.floor((data[base + j + 16] as number) * inverse + 8.5));
      out.writeUInt8(low | (high << 4), block * 18 + 2 + j);
    }
  }
  return out;
}

/** The bytes of a GGUF v3 file holding `metadata` and `tensors`, with tensor data aligned to 32 bytes. */
export function encodeGguf(metadata: ReadonlyMap<string, GgufValue>, tensors: readonly GgufTensor[]): Buffer {
  const sink = new ByteSink();
  sink.u32(GGUF_MAGIC);
  sink.u32(3);
  sink.u64(tensors.length);
  sink.u64(metadata.size);
  for (const [key, value] of metadata) {
    sink.string(key);
    writeValue(sink, value);
  }
  const encoded = tensors.map(encodeTensor);
  let offset = 0;
  tensors.forEach((tensor, i) => {
    const elements = tensor.dims.reduce((a, b) => a * b, 1);
    if (elements !== tensor.data.length) {
      throw new RangeError(
        `tensor ${tensor.name}: dims ${tensor.dims.join("x")} do not match ${tensor.data.length} values`,
      );
    }
    if ((tensor.type === "q8_0" || tensor.type === "q4_0") && (tensor.dims[0] as number) % Q8_BLOCK !== 0) {
      throw new RangeError(
        `tensor ${tensor.name}: ${tensor.type} needs a row length that is a multiple of 32, found ${tensor.dims[0]}`,
      );
    }
    sink.string(tensor.name);
    sink.u32(tensor.dims.length);
    for (const d of tensor.dims) sink.u64(d);
    sink.u32(GGML_TYPE_IDS[tensor.type]);
    sink.u64(offset);
    const size = tensorByteSize(GGML_TYPE_IDS[tensor.type], elements) as number;
    if (size !== (encoded[i] as Uint8Array).length) throw new Error(`tensor ${tensor.name}: encoded size mismatch`);
    offset += Math.ceil(size / GGUF_DEFAULT_ALIGNMENT) * GGUF_DEFAULT_ALIGNMENT;
  });
  sink.padTo(GGUF_DEFAULT_ALIGNMENT);
  for (const bytes of encoded) {
    sink.bytes(bytes);
    sink.padTo(GGUF_DEFAULT_ALIGNMENT);
  }
  return sink.result();
}

// ---------------------------------------------------------------------------------------------------------------------
// The tiny llama

/** Shapes of the presets. Sizes are for f32 weights; f16 halves them and q8_0 takes about 27 %. */
export const TINY_PRESETS = {
  /** ~0.6 MB in f32: 2 blocks, 64-wide. */
  nano: { embedding: 64, blocks: 2, feedForward: 128, heads: 4, headsKv: 2, context: 512 },
  /** ~5 MB in f32: 4 blocks, 128-wide. */
  small: { embedding: 128, blocks: 4, feedForward: 512, heads: 4, headsKv: 2, context: 1024 },
  /** ~20 MB in f32: 6 blocks, 256-wide. */
  medium: { embedding: 256, blocks: 6, feedForward: 768, heads: 8, headsKv: 4, context: 2048 },
  /** ~290 MB in f32: 6 blocks, 1024-wide — loads that take a while, of a realistic size (bench/loads.ts, bench/cold-load.ts). */
  large: { embedding: 1024, blocks: 6, feedForward: 2816, heads: 16, headsKv: 8, context: 2048 },
} as const;

export type TinyPreset = keyof typeof TINY_PRESETS;

export interface TinyLlamaOptions {
  /** Seed of the random weights: the same seed, preset and type give a byte-identical file. Default 1. */
  seed?: number;
  /** Size preset. Default `nano`. */
  preset?: TinyPreset;
  /** Weight type of the matrices (norms stay f32, as llama.cpp expects). Default `f32`. */
  type?: TinyWeightType;
  /** `general.name` in the header. */
  name?: string;
  /**
   * The vocabulary, when it should differ from the default (every prefix of ~270 `▁word`s, letters and a little
   * punctuation, JSON's characters only as byte-fallback tokens, which the weights bias against). Tests of constrained
   * sampling use other shapes, as real models have them.
   */
  vocabulary?: TinyVocabularyOptions;
}

export interface TinyVocabularyOptions {
  /** Words whose `▁`-prefixed prefixes become pieces. Default: the built-in list of ~270 English words. */
  words?: readonly string[];
  /** Extra pieces, each a token of its own (e.g. `{"`, `":`, digits). */
  pieces?: readonly string[];
  /** Whether the 256 byte-fallback tokens are in the vocabulary. Default true. */
  byteFallback?: boolean;
}

/** ChatML, which node-llama-cpp recognises and maps to its own ChatML wrapper. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const WORDS = (
  "the of and to a in is it you that he was for on are with as I his they be at one have this from or had by hot " +
  "word but what some we can out other were all there when up use your how said an each she which do their time if " +
  "will way about many then them write would like so these her long make thing see him two has look more day could " +
  "go come did number sound no most people my over know water than call first who may down side been now find any " +
  "new work part take get place made live where after back little only round man year came show every good me give " +
  "our under name very through just form sentence great think say help low line differ turn cause much mean before " +
  "move right boy old too same tell does set three want air well also play small end put home read hand port large " +
  "spell add even land here must big high such follow act why ask men change went light kind off need house picture " +
  "try us again animal point mother world near build self earth father head stand own page should country found " +
  "answer school grow study still learn plant cover food sun four between state keep eye never last let thought city " +
  "tree cross farm hard start might story saw far sea draw left late run while press close night real life few north " +
  "once upon princess king queen dragon forest castle"
).split(" ");

const SPECIAL = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"] as const;
const BOS_ID = 1;
const EOS_ID = 2;
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, byte: 6 } as const;

interface Vocabulary {
  tokens: string[];
  scores: number[];
  types: number[];
}

/**
 * A SentencePiece-style vocabulary: control tokens, 256 byte-fallback tokens, then every prefix of every `▁word` (the
 * llama tokenizer merges pairs only into pieces that exist, so each word needs its whole chain of prefixes), letters
 * and punctuation. Longer pieces score higher so merges prefer them.
 */
function tinyVocabulary(options: TinyVocabularyOptions = {}): Vocabulary {
  const tokens: string[] = [...SPECIAL];
  const types: number[] = [
    TOKEN_TYPE.unknown,
    TOKEN_TYPE.control,
    TOKEN_TYPE.control,
    TOKEN_TYPE.control,
    TOKEN_TYPE.control,
  ];
  const scores: number[] = tokens.map(() => 0);
  for (let b = 0; b < (options.byteFallback === false ? 0 : 256); b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(TOKEN_TYPE.byte);
    scores.push(0);
  }
  const pieces = new Set<string>(["▁", ..."abcdefghijklmnopqrstuvwxyzI.,!?'\n"]);
  for (const word of options.words ?? WORDS) {
    const piece = `▁${word}`;
    for (let end = 2; end <= piece.length; end++) pieces.add(piece.slice(0, end));
  }
  for (const piece of options.pieces ?? []) pieces.add(piece);
  for (const piece of pieces) {
    tokens.push(piece);
    types.push(TOKEN_TYPE.normal);
    scores.push(-1 / piece.length);
  }
  return { tokens, scores, types };
}

/** The tiny llama's vocabulary, by token id (tests pick token ids by piece, e.g. for logit_bias). */
export function tinyLlamaVocabulary(): string[] {
  return tinyVocabulary().tokens;
}

/** mulberry32: a tiny seeded generator, enough for reproducible random weights (and the benchmarks' workloads). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomMatrix(random: () => number, rows: number, columns: number): Float32Array {
  // Scaled like a standard initialisation so activations stay in range through the blocks.
  const scale = 1 / Math.sqrt(columns);
  const data = new Float32Array(rows * columns);
  for (let i = 0; i < data.length; i++) data[i] = (random() * 2 - 1) * scale * 1.7;
  return data;
}

function ones(n: number): Float32Array {
  return new Float32Array(n).fill(1);
}

/** Value of the constant residual feature (dimension 0) every token embedding carries. */
const BIAS_FEATURE = 2;
/** Weight on that feature in the output rows of tokens the model should not emit: a large negative logit bias. */
const SUPPRESSED_WEIGHT = -2;

function zeroRow(tensor: GgufTensor, row: number): void {
  const columns = tensor.dims[0] as number;
  tensor.data.fill(0, row * columns, (row + 1) * columns);
}

/**
 * Random weights would emit byte-fallback and control tokens as often as words, printing mostly `�`. llama has no output
 * bias, so the generator builds one: dimension 0 of every token embedding is a constant no block writes to (row 0 of each
 * block's output projections is zero), so after the final norm it is a large positive constant; a negative weight on it
 * in a token's output row is a bias against that token. End-of-text tokens stay neutral so generation can still stop.
 */
function suppressNonText(tensors: GgufTensor[], vocab: Vocabulary, eos: readonly number[]): void {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const embeddings = byName.get("token_embd.weight") as GgufTensor;
  const output = byName.get("output.weight") as GgufTensor;
  const width = embeddings.dims[0] as number;
  for (let token = 0; token < vocab.tokens.length; token++) {
    embeddings.data[token * width] = BIAS_FEATURE;
    const text = vocab.types[token] === TOKEN_TYPE.normal;
    output.data[token * width] = text || eos.includes(token) ? 0 : SUPPRESSED_WEIGHT;
  }
  for (const tensor of tensors) {
    if (/\.(attn_output|ffn_down)\.weight$/.test(tensor.name)) zeroRow(tensor, 0);
  }
}

function tinyLlamaTensors(
  shape: (typeof TINY_PRESETS)[TinyPreset],
  vocab: Vocabulary,
  type: TinyWeightType,
  seed: number,
) {
  const random = seededRandom(seed);
  const { embedding: e, feedForward: ff, heads, headsKv, blocks } = shape;
  const kv = (e / heads) * headsKv;
  const vocabSize = vocab.tokens.length;
  const matrix = (name: string, columns: number, rows: number): GgufTensor => ({
    name,
    dims: [columns, rows],
    type,
    data: randomMatrix(random, rows, columns),
  });
  const norm = (name: string): GgufTensor => ({ name, dims: [e], type: "f32", data: ones(e) });
  const tensors: GgufTensor[] = [matrix("token_embd.weight", e, vocabSize), norm("output_norm.weight")];
  tensors.push(matrix("output.weight", e, vocabSize));
  for (let b = 0; b < blocks; b++) {
    tensors.push(
      norm(`blk.${b}.attn_norm.weight`),
      matrix(`blk.${b}.attn_q.weight`, e, e),
      matrix(`blk.${b}.attn_k.weight`, e, kv),
      matrix(`blk.${b}.attn_v.weight`, e, kv),
      matrix(`blk.${b}.attn_output.weight`, e, e),
      norm(`blk.${b}.ffn_norm.weight`),
      matrix(`blk.${b}.ffn_gate.weight`, e, ff),
      matrix(`blk.${b}.ffn_up.weight`, e, ff),
      matrix(`blk.${b}.ffn_down.weight`, ff, e),
    );
  }
  suppressNonText(tensors, vocab, [EOS_ID, vocab.tokens.indexOf("<|im_end|>")]);
  return tensors;
}

/** The metadata and tensors of a tiny random llama, before encoding. */
function tinyLlamaContents(options: TinyLlamaOptions): { metadata: Map<string, GgufValue>; tensors: GgufTensor[] } {
  const preset = options.preset ?? "nano";
  const type = options.type ?? "f32";
  const seed = options.seed ?? 1;
  const shape = TINY_PRESETS[preset];
  if (!shape)
    throw new RangeError(
      `unknown tiny model preset ${JSON.stringify(preset)}; expected one of ${Object.keys(TINY_PRESETS).join(", ")}`,
    );
  const vocab = tinyVocabulary(options.vocabulary);
  const headDim = shape.embedding / shape.heads;
  const metadata = new Map<string, GgufValue>([
    ["general.architecture", { type: "string", value: "llama" }],
    ["general.name", { type: "string", value: options.name ?? `inferno-tiny-${preset}-${type}` }],
    ["general.file_type", { type: "u32", value: FILE_TYPE_OF_WRITER_TYPE[type] }],
    ["general.alignment", { type: "u32", value: GGUF_DEFAULT_ALIGNMENT }],
    ["llama.context_length", { type: "u32", value: shape.context }],
    ["llama.embedding_length", { type: "u32", value: shape.embedding }],
    ["llama.block_count", { type: "u32", value: shape.blocks }],
    ["llama.feed_forward_length", { type: "u32", value: shape.feedForward }],
    ["llama.attention.head_count", { type: "u32", value: shape.heads }],
    ["llama.attention.head_count_kv", { type: "u32", value: shape.headsKv }],
    ["llama.rope.dimension_count", { type: "u32", value: headDim }],
    ["llama.rope.freq_base", { type: "f32", value: 10000 }],
    ["llama.attention.layer_norm_rms_epsilon", { type: "f32", value: 1e-5 }],
    ["llama.vocab_size", { type: "u32", value: vocab.tokens.length }],
    ["tokenizer.ggml.model", { type: "string", value: "llama" }],
    ["tokenizer.ggml.tokens", { type: "string[]", value: vocab.tokens }],
    ["tokenizer.ggml.scores", { type: "f32[]", value: vocab.scores }],
    ["tokenizer.ggml.token_type", { type: "i32[]", value: vocab.types }],
    ["tokenizer.ggml.unknown_token_id", { type: "u32", value: 0 }],
    ["tokenizer.ggml.bos_token_id", { type: "u32", value: BOS_ID }],
    ["tokenizer.ggml.eos_token_id", { type: "u32", value: EOS_ID }],
    ["tokenizer.ggml.add_bos_token", { type: "bool", value: true }],
    ["tokenizer.ggml.add_eos_token", { type: "bool", value: false }],
    ["tokenizer.chat_template", { type: "string", value: CHATML_TEMPLATE }],
  ]);
  return { metadata, tensors: tinyLlamaTensors(shape, vocab, type, seed) };
}

/** The GGUF bytes of a tiny random llama. Deterministic: same options, same bytes. */
export function tinyLlamaGguf(options: TinyLlamaOptions = {}): Buffer {
  const { metadata, tensors } = tinyLlamaContents(options);
  return encodeGguf(metadata, tensors);
}

/**
 * The parts of a tiny llama split as llama.cpp's `gguf-split` splits a model: the tensors spread over `count` files,
 * every part carrying `split.no`, `split.count` and `split.tensors.count`, and the first part also the model's
 * metadata. llama.cpp loads the whole model when given the first part, if the parts are named by `splitPartName` (split.ts).
 */
export function tinyLlamaGgufSplit(count: number, options: TinyLlamaOptions = {}): Buffer[] {
  const { metadata, tensors } = tinyLlamaContents(options);
  if (!Number.isInteger(count) || count < 2 || count > tensors.length) {
    throw new RangeError(`a split needs 2 to ${tensors.length} parts, found ${count}`);
  }
  const perPart = Math.ceil(tensors.length / count);
  return Array.from({ length: count }, (_, index) => {
    const split = new Map<string, GgufValue>([
      ["split.no", { type: "u16", value: index }],
      ["split.count", { type: "u16", value: count }],
      ["split.tensors.count", { type: "i32", value: tensors.length }],
    ]);
    const partMetadata = index === 0 ? new Map([...metadata, ...split]) : split;
    return encodeGguf(partMetadata, tensors.slice(index * perPart, (index + 1) * perPart));
  });
}

/** Writes a tiny llama to `path` (atomically, creating its directory) and returns its size. */
export async function writeTinyLlamaGguf(path: string, options: TinyLlamaOptions = {}): Promise<Bytes> {
  const bytes = tinyLlamaGguf(options);
  await writeModelFile(path, bytes);
  return bytes.length;
}

/** Writes a model file atomically (fs/atomic-write.ts: no reader sees half a model), creating its directory. */
export async function writeModelFile(path: string, bytes: Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, bytes);
}

/**
 * The model host protocol: the messages between Inferno and a model host process, and their framing.
 *
 * Messages travel on a dedicated pipe (file descriptor 3 in the host), each frame a 4-byte big-endian length followed
 * by the message, as JSON when JSON gives it back exactly (see `jsonExact`: a generation's call, its text and its
 * result), else v8-serialized (typed arrays, bigints, undefined fields cross as they are). Not Node's `fork` IPC
 * channel: a malformed message on that channel throws inside Node's own channel code in the parent — an uncaught
 * exception that ends the server. Here a frame that fails to decode, or decodes to something that is not a message,
 * is caught and counts as a crash of that one host.
 *
 * Generation options travel generically: every plain-data field as it is; only `signal` and `onText` stay behind and
 * become `abort` messages and `text` messages. Results come back as the in-process backend returned them.
 */
import { deserialize, serialize } from "node:v8";
import type { BackendConfig } from "../../config/schema.js";
import * as errors from "../../errors/index.js";
import { InfernoError } from "../../errors/index.js";
import type { ModelDescriptor, ModelFormat } from "../../models/types.js";
import type { PromptStoreEvent, PromptStoreSettings } from "../types.js";
import { GIB } from "../../units.js";

/** The host's end of the pipe. */
export const HOST_FD = 3;
/** Frames larger than this are a protocol failure (no legitimate message comes near it). */
export const MAX_FRAME_BYTES = GIB;

export type CallMethod = "complete" | "chat" | "embed" | "tokenize" | "warm" | "run";
const CALL_METHODS: readonly CallMethod[] = ["complete", "chat", "embed", "tokenize", "warm", "run"];

/** Inferno → host. */
export type ToHost =
  /** Start the runtime of a format (llama.cpp for GGUF) so a later load pays no start-up. Answered by `ready`. */
  | { type: "init"; format: ModelFormat; gpu: BackendConfig["gpu"] }
  | { type: "load"; id: number; descriptor: ModelDescriptor; config: BackendConfig; promptStore?: PromptStoreSettings }
  /** Calls a method of the loaded model. `args` are the method's arguments without signal and onText. */
  | { type: "call"; id: number; method: CallMethod; args: unknown[]; stream: boolean }
  | { type: "abort"; id: number }
  /** Answered by `pong` at once, whatever the host is doing: the watchdog's question (see host.ts). */
  | { type: "ping" }
  /** The host's own memory figure, for platforms where the OS offers none to another process. */
  | { type: "memory"; id: number }
  /** Dispose the model and exit. */
  | { type: "dispose"; id: number };

/** An error as it crosses the pipe; `code` names the Inferno error class it was. */
export interface WireError {
  code: string | null;
  message: string;
  details?: Record<string, unknown> | undefined;
}

/** Host → Inferno. */
export type FromHost =
  | { type: "ready" }
  | { type: "pong" }
  | { type: "progress"; id: number; fraction: number }
  | { type: "loaded"; id: number; kind: "text" | "tensor"; memoryBytes: number }
  /** Streamed text of a call: the pieces that arrived together, as one message (see text-stream.ts). */
  | { type: "text"; id: number; text: string }
  | { type: "result"; id: number; value: unknown }
  /** What the loaded model's prompt store did (also while it loads and while it is disposed). */
  | { type: "prompt"; event: PromptStoreEvent }
  /** `id` null: a failure outside any request (the runtime did not start). */
  | { type: "error"; id: number | null; error: WireError };

/** A frame that does not decode to a message. */
export class ProtocolError extends Error {}

/**
 * How a frame's body says its format: v8's format begins with its version tag (0xff), a message as JSON with "{".
 *
 * Small messages go as JSON where it is exact: both formats take 1–4 µs in a loop, but each side encodes or decodes a
 * message on the hop's path with its code out of the caches (right after waking up, or after the model's call), and
 * there JSON is the cheaper: the four encodings and decodings of a non-streamed chat took 0.130 ms against 0.152 with
 * v8's format alone, of a completion 0.118 against 0.139 (medians of 3,000 requests to the same servers, the format
 * alternating by request id; bench/NOTES.md). Large ones stay v8's, the faster there (see `JSON_MAX_SIZE`).
 */
const JSON_START = 0x7b;

/**
 * The largest message that goes as JSON, in characters of its strings and keys plus one per value; the most elements
 * an array of it may have. In a loop a text of ~1,000 characters encodes as fast in either format, one of 16,000 2.6×
 * slower as JSON; 16 numbers 5× faster as JSON, 256 2× slower; a hundred thousand tokens 9× slower. The bounds also
 * bound `jsonExact`'s own walk (and end it on a cycle).
 */
const JSON_MAX_SIZE = 1024;
const JSON_MAX_ITEMS = 16;

/**
 * Whether `value` is small (`JSON_MAX_SIZE`) and JSON gives it back as v8's format would: strings, booleans, null,
 * finite numbers but -0, arrays of nothing but their elements (no holes, no other properties) and objects whose
 * prototype is Object's (or none) made of such values. Not undefined (JSON drops the field, and a spread over defaults
 * tells a field set to undefined from one absent), NaN or ±Infinity (null), -0 (0), bigints, typed arrays, dates,
 * class instances: v8's format keeps them.
 */
export function jsonExact(value: unknown): boolean {
  let room = JSON_MAX_SIZE;
  const exact = (item: unknown): boolean => {
    if (--room < 0) return false;
    switch (typeof item) {
      case "string":
        room -= item.length;
        return room >= 0;
      case "boolean":
        return true;
      case "number":
        return Number.isFinite(item) && !Object.is(item, -0);
      case "object":
        break;
      default:
        return false;
    }
    if (item === null) return true;
    if (Array.isArray(item)) {
      // The length first: `Object.keys` makes a string of every index.
      if (item.length > JSON_MAX_ITEMS || Object.keys(item).length !== item.length) return false;
      for (const element of item) if (!exact(element)) return false;
      return true;
    }
    const prototype: unknown = Object.getPrototypeOf(item);
    if (prototype !== Object.prototype && prototype !== null) return false;
    for (const key in item) {
      room -= key.length;
      if (!exact((item as Record<string, unknown>)[key])) return false;
    }
    return true;
  };
  return exact(value);
}

export function encodeFrame(message: ToHost | FromHost): Buffer {
  if (jsonExact(message)) {
    const json = JSON.stringify(message);
    const length = Buffer.byteLength(json);
    const frame = Buffer.allocUnsafe(4 + length);
    frame.writeUInt32BE(length, 0);
    frame.write(json, 4);
    return frame;
  }
  const body = serialize(message);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length, 0);
  return Buffer.concat([header, body]);
}

/** The value a frame's body holds, in either format (see `JSON_START`). */
function decodeBody(body: Buffer): unknown {
  return body[0] === JSON_START ? JSON.parse(body.toString("utf8")) : deserialize(body);
}

/** Splits a byte stream into decoded values. `push` throws `ProtocolError` on a frame that cannot be decoded. */
export class FrameReader {
  private buffered: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): unknown[] {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const values: unknown[] = [];
    while (this.buffered.length >= 4) {
      const length = this.buffered.readUInt32BE(0);
      if (length === 0 || length > MAX_FRAME_BYTES) throw new ProtocolError(`a frame of ${length} bytes`);
      if (this.buffered.length < 4 + length) break;
      const body = this.buffered.subarray(4, 4 + length);
      this.buffered = this.buffered.subarray(4 + length);
      try {
        values.push(decodeBody(body));
      } catch (error) {
        throw new ProtocolError(`a frame that does not decode (${(error as Error).message})`);
      }
    }
    return values;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

const isId = (value: unknown): value is number => Number.isSafeInteger(value);

type Message = Record<string, unknown>;

/** Whether a message of each type carries what that type needs; a type not in the table is not a message. */
type MessageChecks = Readonly<Record<string, (m: Message) => boolean>>;

const FROM_HOST: MessageChecks = {
  ready: () => true,
  pong: () => true,
  progress: (m) => isId(m.id) && typeof m.fraction === "number",
  loaded: (m) => isId(m.id) && (m.kind === "text" || m.kind === "tensor") && typeof m.memoryBytes === "number",
  text: (m) => isId(m.id) && typeof m.text === "string",
  result: (m) => isId(m.id),
  prompt: (m) => isObject(m.event) && typeof m.event.action === "string" && typeof m.event.bytes === "number",
  error: (m) => (m.id === null || isId(m.id)) && isObject(m.error) && typeof m.error.message === "string",
};

const TO_HOST: MessageChecks = {
  init: (m) => m.format === "gguf" || m.format === "onnx",
  ping: () => true,
  load: (m) =>
    isId(m.id) &&
    isObject(m.descriptor) &&
    isObject(m.config) &&
    (m.promptStore === undefined || isObject(m.promptStore)),
  call: (m) => isId(m.id) && CALL_METHODS.includes(m.method as CallMethod) && Array.isArray(m.args),
  abort: (m) => isId(m.id),
  memory: (m) => isId(m.id),
  dispose: (m) => isId(m.id),
};

/** `value` when it is an object whose `type` names an entry of `checks` that it passes; else a `ProtocolError`. */
function parseMessage(value: unknown, checks: MessageChecks): Message {
  if (!isObject(value) || typeof value.type !== "string") throw new ProtocolError("a value that is not a message");
  const check = Object.hasOwn(checks, value.type) ? checks[value.type] : undefined;
  if (!check?.(value)) throw new ProtocolError(`a malformed "${value.type.slice(0, 40)}" message`);
  return value;
}

/** Checks that a decoded value is a message from a host; throws `ProtocolError` naming what is wrong. */
export function parseFromHost(value: unknown): FromHost {
  return parseMessage(value, FROM_HOST) as unknown as FromHost;
}

/** Checks that a decoded value is a message to a host (the host's side of `parseFromHost`). */
export function parseToHost(value: unknown): ToHost {
  return parseMessage(value, TO_HOST) as unknown as ToHost;
}

export function toWireError(error: unknown): WireError {
  if (error instanceof InfernoError) return { code: error.code, message: error.message, details: error.details };
  return { code: null, message: error instanceof Error ? error.message : String(error) };
}

type ErrorClass = new (message: string, options?: errors.InfernoErrorOptions) => InfernoError;
let classesByCode: Map<string, ErrorClass> | undefined;

/** Every concrete Inferno error class by its code, so an error thrown in a host is the same class here. */
function errorClasses(): Map<string, ErrorClass> {
  if (!classesByCode) {
    classesByCode = new Map();
    for (const value of Object.values(errors)) {
      if (typeof value !== "function" || !(value.prototype instanceof InfernoError)) continue;
      const Class = value as ErrorClass;
      classesByCode.set(new Class("").code, Class);
    }
  }
  return classesByCode;
}

/** The error a host reported, as the Inferno error class it was (a plain Error when it was none). */
export function fromWireError(wire: WireError): Error {
  const Class = wire.code === null ? undefined : errorClasses().get(wire.code);
  if (Class) return new Class(wire.message, { details: wire.details });
  return new Error(wire.message);
}

/**
 * A minimal protobuf walker for ONNX's ModelProto: reads ir_version (field 1), producer_name (2), the graph's inputs and
 * outputs (graph = 7; inputs 11, outputs 12, initializers 5) and opset_import (8), and skips everything else — weights
 * included — without reading it.
 */
import { ModelInvalid } from "../errors/index.js";
import { EndOfData, type FileCursor, readHeaderFile } from "./gguf-reader.js";
import type { OnnxMetadata, OnnxTensorInfo } from "./types.js";

const WIRE = { varint: 0, fixed64: 1, len: 2, fixed32: 5 } as const;

/** ONNX TensorProto.DataType names, as onnxruntime-node spells tensor types. */
const ELEMENT_TYPES: Readonly<Record<number, string>> = {
  1: "float32",
  2: "uint8",
  3: "int8",
  4: "uint16",
  5: "int16",
  6: "int32",
  7: "int64",
  8: "string",
  9: "bool",
  10: "float16",
  11: "float64",
  12: "uint32",
  13: "uint64",
  14: "complex64",
  15: "complex128",
  16: "bfloat16",
};

class ProtobufError extends Error {}

async function varint(cursor: FileCursor): Promise<bigint> {
  let result = 0n;
  for (let shift = 0n; shift < 70n; shift += 7n) {
    const byte = await cursor.u8();
    result |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return result;
  }
  throw new ProtobufError(`a varint at offset ${cursor.position} is longer than 10 bytes`);
}

interface Field {
  number: number;
  wire: number;
  /** For varints: the value. */
  value: bigint;
  /** For length-delimited fields: where the payload starts and how long it is. The cursor is at `start`. */
  start: number;
  length: number;
}

/**
 * Calls `visit` for each field of the message between the cursor and `end`. Length-delimited payloads the visitor does
 * not consume are skipped.
 */
async function walk(cursor: FileCursor, end: number, visit: (field: Field) => Promise<void> | void): Promise<void> {
  while (cursor.position < end) {
    const tag = Number(await varint(cursor));
    const field: Field = { number: tag >>> 3, wire: tag & 7, value: 0n, start: 0, length: 0 };
    if (field.number === 0) throw new ProtobufError(`field number 0 at offset ${cursor.position}`);
    switch (field.wire) {
      case WIRE.varint:
        field.value = await varint(cursor);
        await visit(field);
        break;
      case WIRE.fixed64:
        cursor.skip(8);
        break;
      case WIRE.fixed32:
        cursor.skip(4);
        break;
      case WIRE.len: {
        field.length = Number(await varint(cursor));
        field.start = cursor.position;
        if (field.start + field.length > end) throw new EndOfData(field.start, field.length, end);
        await visit(field);
        cursor.seek(field.start + field.length);
        break;
      }
      default:
        throw new ProtobufError(`unsupported wire type ${field.wire} at offset ${cursor.position}`);
    }
  }
  if (cursor.position !== end) throw new ProtobufError(`a message overruns its end at offset ${end}`);
}

async function text(cursor: FileCursor, field: Field): Promise<string> {
  return (await cursor.bytes(field.length)).toString("utf8");
}

const end = (f: Field) => f.start + f.length;

async function readShape(cursor: FileCursor, shapeEnd: number): Promise<OnnxTensorInfo["shape"]> {
  const shape: OnnxTensorInfo["shape"] = [];
  await walk(cursor, shapeEnd, async (dim) => {
    if (dim.number !== 1 || dim.wire !== WIRE.len) return;
    let value: number | string | null = null;
    await walk(cursor, end(dim), async (d) => {
      if (d.number === 1 && d.wire === WIRE.varint) value = Number(BigInt.asIntN(64, d.value));
      if (d.number === 2 && d.wire === WIRE.len) value = await text(cursor, d);
    });
    shape.push(value);
  });
  return shape;
}

/** ValueInfoProto: name (1), type (2) → TypeProto.tensor_type (1) → elem_type (1), shape (2). */
async function readValueInfo(cursor: FileCursor, infoEnd: number): Promise<OnnxTensorInfo> {
  const info: OnnxTensorInfo = { name: "", type: "unknown", shape: [] };
  await walk(cursor, infoEnd, async (f) => {
    if (f.number === 1 && f.wire === WIRE.len) info.name = await text(cursor, f);
    if (f.number !== 2 || f.wire !== WIRE.len) return;
    await walk(cursor, end(f), async (typeField) => {
      if (typeField.wire !== WIRE.len) return;
      if (typeField.number !== 1) {
        info.type = typeField.number === 4 ? "sequence" : typeField.number === 5 ? "map" : "non-tensor";
        return;
      }
      await walk(cursor, end(typeField), async (t) => {
        if (t.number === 1 && t.wire === WIRE.varint) info.type = ELEMENT_TYPES[Number(t.value)] ?? `type ${t.value}`;
        if (t.number === 2 && t.wire === WIRE.len) info.shape = await readShape(cursor, end(t));
      });
    });
  });
  return info;
}

interface GraphParts {
  inputs: OnnxTensorInfo[];
  outputs: OnnxTensorInfo[];
  initializers: Set<string>;
}

async function readGraph(cursor: FileCursor, graphEnd: number): Promise<GraphParts> {
  const parts: GraphParts = { inputs: [], outputs: [], initializers: new Set() };
  await walk(cursor, graphEnd, async (f) => {
    if (f.wire !== WIRE.len) return;
    if (f.number === 11) parts.inputs.push(await readValueInfo(cursor, end(f)));
    else if (f.number === 12) parts.outputs.push(await readValueInfo(cursor, end(f)));
    else if (f.number === 5) {
      // TensorProto.name is field 8; raw weights (field 9) are skipped by the walker.
      await walk(cursor, end(f), async (t) => {
        if (t.number === 8 && t.wire === WIRE.len) parts.initializers.add(await text(cursor, t));
      });
    }
  });
  return parts;
}

function invalid(path: string, problem: string): ModelInvalid {
  return new ModelInvalid(`${path} is not a valid ONNX model: ${problem}`, { details: { path, problem } });
}

async function parseModel(path: string, cursor: FileCursor): Promise<OnnxMetadata> {
  let irVersion: number | undefined;
  let producer: string | undefined;
  let graph: GraphParts | undefined;
  let opset: number | undefined;
  await walk(cursor, cursor.size, async (f) => {
    if (f.number === 1 && f.wire === WIRE.varint) irVersion = Number(f.value);
    else if (f.number === 2 && f.wire === WIRE.len) producer = await text(cursor, f);
    else if (f.number === 7 && f.wire === WIRE.len) graph = await readGraph(cursor, end(f));
    else if (f.number === 8 && f.wire === WIRE.len) {
      let domain = "";
      let version = 0;
      await walk(cursor, end(f), async (o) => {
        if (o.number === 1 && o.wire === WIRE.len) domain = await text(cursor, o);
        if (o.number === 2 && o.wire === WIRE.varint) version = Number(o.value);
      });
      if (domain === "" || domain === "ai.onnx") opset = version;
    }
  });
  if (irVersion === undefined) throw invalid(path, "no ir_version: this is not an ONNX ModelProto");
  const found = graph as GraphParts | undefined;
  if (!found) throw invalid(path, "the model has no graph");
  return {
    format: "onnx",
    // Before IR version 4, initializers were also listed as graph inputs; they are weights, not inputs to feed.
    inputs: found.inputs.filter((i) => !found.initializers.has(i.name)),
    outputs: found.outputs,
    opset: opset ?? 0,
    irVersion,
    ...(producer ? { producer } : {}),
  };
}

/** Reads the inputs, outputs, opset and IR version of the ONNX model at `path`. Throws ModelInvalid naming the problem. */
export function readOnnxMetadata(path: string): Promise<OnnxMetadata> {
  return readHeaderFile(
    path,
    (problem) => invalid(path, problem),
    (cursor) => parseModel(path, cursor),
    (error, cursor) => {
      if (error instanceof EndOfData)
        return invalid(path, `truncated: a field runs past the end of the file (${cursor.size} bytes)`);
      if (error instanceof ProtobufError) return invalid(path, `not a protobuf ModelProto (${error.message})`);
      return undefined;
    },
  );
}

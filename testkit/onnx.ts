/**
 * A hand-written ONNX model for unit tests: `y = a + b` over float32 tensors of shape [N, 4], encoded as protobuf by a
 * few lines below so no ONNX tooling is needed.
 */

/** Protobuf field encoders: a field is its tag followed by a varint or a length-delimited payload. */
function varint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}
const intField = (field: number, value: number): number[] => [...varint(field << 3), ...varint(value)];
const bytesField = (field: number, payload: number[] | Buffer): number[] => [
  ...varint((field << 3) | 2),
  ...varint(payload.length),
  ...payload,
];
const textField = (field: number, text: string) => bytesField(field, Buffer.from(text, "utf8"));

/** ValueInfoProto of a float32 tensor; a string dimension is symbolic. */
function tensorValueInfo(name: string, dims: Array<number | string>): number[] {
  const shape = dims.flatMap((d) => bytesField(1, typeof d === "number" ? intField(1, d) : textField(2, d)));
  const tensorType = [...intField(1, 1), ...bytesField(2, shape)];
  return [...textField(1, name), ...bytesField(2, bytesField(1, tensorType))];
}

/** The bytes of an ONNX model computing `y = a + b` (opset 13, IR version 8), inputs `a` and `b` of shape [N, 4]. */
export function tinyAddOnnx(): Buffer {
  const node = [
    ...textField(1, "a"),
    ...textField(1, "b"),
    ...textField(2, "y"),
    ...textField(3, "add"),
    ...textField(4, "Add"),
  ];
  const graph = [
    ...bytesField(1, node),
    ...textField(2, "tiny_add"),
    ...bytesField(11, tensorValueInfo("a", ["N", 4])),
    ...bytesField(11, tensorValueInfo("b", ["N", 4])),
    ...bytesField(12, tensorValueInfo("y", ["N", 4])),
  ];
  const opset = [...textField(1, ""), ...intField(2, 13)];
  return Buffer.from([
    ...intField(1, 8),
    ...textField(2, "inferno-test"),
    ...bytesField(7, graph),
    ...bytesField(8, opset),
  ]);
}

/**
 * ONNX models on ONNX Runtime (onnxruntime-node): one inference session per model, run with named tensors. The native
 * runtime is imported on the first load, so GGUF-only use never loads it.
 */
import type * as OrtModule from "onnxruntime-node";
import type { InferenceSession, Tensor } from "onnxruntime-node";
import { Aborted, BadRequest, isInfernoError, ModelLoadFailed } from "../errors/index.js";
import type { Bytes, ModelDescriptor } from "../models/types.js";
import { anySignal, Lifetime, physicalCores, threadCount, throwIfAborted } from "./common.js";
import type { Backend, LoadOptions, TensorInput, TensorModel, TensorOutput } from "./types.js";

type Ort = typeof OrtModule;

/**
 * When resident-memory growth around session creation cannot be attributed (other allocations freed meanwhile), the
 * model is accounted at this multiple of its file size — the same factor ModelManager's estimate uses.
 */
const FALLBACK_MEMORY_FACTOR = 2;

const TYPED = {
  float32: Float32Array,
  int32: Int32Array,
  uint8: Uint8Array,
} as const;

/** An onnxruntime tensor from Inferno's plain description, converting plain arrays to the typed array ORT expects. */
function toOrtTensor(ort: Ort, name: string, input: TensorInput): Tensor {
  const { type, data, dims } = input;
  const elements = dims.reduce((a, b) => a * b, 1);
  if (data.length !== elements) {
    throw new BadRequest(
      `input ${name}: ${data.length} values do not fill shape [${dims.join(", ")}] (${elements} values)`,
    );
  }
  if (type === "int64") {
    const values =
      data instanceof BigInt64Array ? data : BigInt64Array.from(data as ArrayLike<number | bigint>, (v) => BigInt(v));
    return new ort.Tensor("int64", values, dims);
  }
  if (type === "bool")
    return new ort.Tensor(
      "bool",
      Uint8Array.from(data as ArrayLike<number | boolean>, (v) => (v ? 1 : 0)),
      dims,
    );
  const Typed = TYPED[type];
  if (!Typed) throw new BadRequest(`input ${name}: unsupported tensor type ${JSON.stringify(type)}`);
  const values = data instanceof Typed ? data : Typed.from(data as ArrayLike<number>);
  return new ort.Tensor(type, values, dims);
}

function toOutput(tensor: Tensor): TensorOutput {
  return { type: tensor.type, data: tensor.data as TensorOutput["data"], dims: [...tensor.dims] };
}

class OnnxTensorModel implements TensorModel {
  readonly kind = "tensor";
  private readonly lifetime: Lifetime;

  constructor(
    readonly descriptor: ModelDescriptor,
    readonly memoryBytes: Bytes,
    private readonly ort: Ort,
    private readonly session: InferenceSession,
  ) {
    this.lifetime = new Lifetime(descriptor);
  }

  get disposed(): boolean {
    return this.lifetime.disposed;
  }

  run(inputs: Record<string, TensorInput>, signal?: AbortSignal): Promise<Record<string, TensorOutput>> {
    return this.lifetime.run(async () => {
      const combined = anySignal(signal, this.lifetime.signal);
      throwIfAborted(combined, `running ${this.descriptor.name}`);
      const feeds = this.feeds(inputs);
      // ORT cannot stop a run midway; an abort during the run discards its result.
      const results = await this.session.run(feeds);
      throwIfAborted(combined, `running ${this.descriptor.name}`);
      return Object.fromEntries(Object.entries(results).map(([name, tensor]) => [name, toOutput(tensor)]));
    });
  }

  private feeds(inputs: Record<string, TensorInput>): Record<string, Tensor> {
    const expected = this.session.inputNames;
    const given = Object.keys(inputs);
    const unknown = given.filter((n) => !expected.includes(n));
    const missing = expected.filter((n) => !given.includes(n));
    if (unknown.length > 0 || missing.length > 0) {
      throw new BadRequest(
        `model ${this.descriptor.name} takes inputs ${expected.join(", ")}` +
          (missing.length > 0 ? `; missing: ${missing.join(", ")}` : "") +
          (unknown.length > 0 ? `; unknown: ${unknown.join(", ")}` : ""),
        { details: { expected, missing, unknown } },
      );
    }
    return Object.fromEntries(given.map((name) => [name, toOrtTensor(this.ort, name, inputs[name] as TensorInput)]));
  }

  dispose(): Promise<void> {
    return this.lifetime.dispose(() => this.session.release());
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

export class OnnxBackend implements Backend {
  readonly format = "onnx";
  private ort: Promise<Ort> | undefined;

  /** Imports ONNX Runtime now, so the first load does not pay for it (a model host's spare start). */
  async prepare(): Promise<void> {
    await this.runtime();
  }

  private runtime(): Promise<Ort> {
    this.ort ??= import("onnxruntime-node");
    return this.ort;
  }

  async load(descriptor: ModelDescriptor, options: LoadOptions): Promise<TensorModel> {
    const { signal, backend } = options;
    throwIfAborted(signal, `loading ${descriptor.name}`);
    try {
      const ort = await this.runtime();
      const before = process.memoryUsage.rss();
      const session = await ort.InferenceSession.create(descriptor.path, {
        intraOpNumThreads: threadCount(backend.threads, physicalCores()),
        interOpNumThreads: 1,
        graphOptimizationLevel: "all",
        logSeverityLevel: 3,
      });
      const grown = process.memoryUsage.rss() - before;
      if (signal?.aborted) {
        await session.release();
        throw new Aborted(`loading ${descriptor.name} was aborted`, { cause: signal.reason });
      }
      options.onProgress?.(1);
      const memory = grown > descriptor.fingerprint.size ? grown : descriptor.fingerprint.size * FALLBACK_MEMORY_FACTOR;
      return new OnnxTensorModel(descriptor, memory, ort, session);
    } catch (error) {
      if (isInfernoError(error)) throw error;
      throw new ModelLoadFailed(`ONNX Runtime could not load ${descriptor.name}: ${(error as Error).message}`, {
        cause: error,
        details: { model: descriptor.name, path: descriptor.path },
      });
    }
  }

  async dispose(): Promise<void> {
    // Sessions are released by their models; the runtime itself holds nothing to free.
  }
}

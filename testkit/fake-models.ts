/**
 * An in-memory `ModelSource` for the cache's unit tests and the eviction benchmark: models are plain records, files can
 * be "changed" or "deleted", and lookups are counted so tests can check the cache stays cheap on hits.
 */
import { ModelNotFound } from "../src/errors/index.js";
import type { Bytes, Fingerprint, ModelDescriptor, ModelSource } from "../src/models/types.js";

export interface FakeModelSpec {
  name: string;
  /** Estimated memory once loaded (what `estimateMemory` answers). Default: 1 MiB. */
  estimateBytes?: Bytes;
  size?: Bytes;
}

export class FakeModelSource implements ModelSource {
  readonly calls = { resolve: 0, lookup: 0, fingerprint: 0, estimate: 0, list: 0 };
  /** Whether the models folder is there (`available()`); false simulates an unmounted folder. */
  folderPresent = true;
  private readonly models = new Map<string, { descriptor: ModelDescriptor; estimate: Bytes; exists: boolean }>();
  /** The same records by bare name (the common spelling, looked up without building a key). */
  private readonly byName = new Map<string, { descriptor: ModelDescriptor; estimate: Bytes; exists: boolean }>();

  constructor(
    specs: Array<FakeModelSpec | string>,
    private readonly root = "/models",
  ) {
    for (const spec of specs) this.add(typeof spec === "string" ? { name: spec } : spec);
  }

  add(spec: FakeModelSpec): ModelDescriptor {
    const key = `${this.root}/${spec.name}`;
    const descriptor: ModelDescriptor = {
      name: spec.name,
      key,
      path: key,
      format: spec.name.endsWith(".onnx") ? "onnx" : "gguf",
      fingerprint: { size: spec.size ?? 1000, mtimeMs: Date.UTC(2025, 0, 1) },
    };
    const record = { descriptor, estimate: spec.estimateBytes ?? 1024 * 1024, exists: true };
    this.models.set(key, record);
    this.byName.set(spec.name, record);
    return descriptor;
  }

  /** Simulates rewriting the file: size and mtime change. */
  touch(name: string): void {
    const model = this.record(name);
    const { size, mtimeMs } = model.descriptor.fingerprint;
    model.descriptor = { ...model.descriptor, fingerprint: { size: size + 1, mtimeMs: mtimeMs + 1000 } };
  }

  remove(name: string): void {
    this.record(name).exists = false;
  }

  setEstimate(name: string, bytes: Bytes): void {
    this.record(name).estimate = bytes;
  }

  key(name: string): string {
    return this.record(name).descriptor.key;
  }

  async resolve(name: string): Promise<ModelDescriptor> {
    this.calls.resolve++;
    const descriptor = this.find(name);
    if (!descriptor) throw new ModelNotFound(`no model named ${JSON.stringify(name)}`);
    return descriptor;
  }

  /** Like resolve, without awaiting (the cache's synchronous hit path). */
  lookup(name: string): ModelDescriptor | undefined {
    this.calls.lookup++;
    return this.find(name);
  }

  async available(): Promise<boolean> {
    return this.folderPresent;
  }

  private find(name: string): ModelDescriptor | undefined {
    if (!this.folderPresent) return undefined;
    // Every spelling of one file resolves to the same key: bare name, `./name` or the absolute path.
    const model =
      this.byName.get(name) ??
      this.models.get(name.startsWith("/") ? name : `${this.root}/${name.replace(/^\.\//, "")}`);
    return model?.exists ? model.descriptor : undefined;
  }

  async list(): Promise<ModelDescriptor[]> {
    this.calls.list++;
    return [...this.models.values()].filter((m) => m.exists).map((m) => m.descriptor);
  }

  async fingerprint(key: string): Promise<Fingerprint | null> {
    this.calls.fingerprint++;
    const model = this.models.get(key);
    return model?.exists && this.folderPresent ? model.descriptor.fingerprint : null;
  }

  async estimateMemory(model: ModelDescriptor): Promise<Bytes> {
    this.calls.estimate++;
    return this.models.get(model.key)?.estimate ?? 0;
  }

  private record(name: string) {
    const model = this.models.get(`${this.root}/${name}`);
    if (!model) throw new Error(`FakeModelSource: no model ${name}`);
    return model;
  }
}

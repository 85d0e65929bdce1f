/**
 * The Backend contract, as one suite every backend runs: `runBackendContract("gguf", setup)`. It checks what the cache
 * relies on — load gives a handle of the right model with a measured memory figure, the handle works, dispose is
 * idempotent and final, aborts and broken files become typed errors — not what each format can do.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Backend, LoadedModel } from "../../src/backends/types.js";
import type { BackendConfig } from "../../src/config/schema.js";
import { Aborted, Disposed, ModelLoadFailed } from "../../src/errors/index.js";
import type { ModelDescriptor } from "../../src/models/types.js";

export interface ContractSubject {
  backend: Backend;
  /** A model this backend loads. */
  model: ModelDescriptor;
  config: BackendConfig;
  /** One cheap call that proves a loaded model works (and throws once it is disposed). */
  use(model: LoadedModel): Promise<unknown>;
  /** A model of this backend's format that cannot be loaded, if the backend reads files. */
  broken?: ModelDescriptor;
  /** Frees what setup made (temporary files). The suite disposes the backend itself. */
  cleanup?(): Promise<void>;
}

export function runBackendContract(name: string, setup: () => Promise<ContractSubject>): void {
  describe(`Backend contract: ${name}`, () => {
    let subject: ContractSubject;
    let loaded: LoadedModel;

    before(async () => {
      subject = await setup();
      loaded = await subject.backend.load(subject.model, { backend: subject.config });
    });
    after(async () => {
      await loaded?.dispose();
      await subject?.backend.dispose();
      await subject?.backend.dispose(); // idempotent
      await subject?.cleanup?.();
    });

    test("load gives a working handle of that model, with a measured memory figure", async () => {
      assert.equal(loaded.descriptor, subject.model);
      assert.equal(loaded.disposed, false);
      assert.ok(Number.isFinite(loaded.memoryBytes) && loaded.memoryBytes > 0, `memoryBytes ${loaded.memoryBytes}`);
      assert.ok(loaded.kind === "text" || loaded.kind === "tensor");
      await subject.use(loaded);
    });

    test("dispose is idempotent, Symbol.asyncDispose disposes, and any use afterwards throws Disposed", async () => {
      const model = await subject.backend.load(subject.model, { backend: subject.config });
      await Promise.all([model.dispose(), model.dispose()]);
      await model[Symbol.asyncDispose]();
      assert.equal(model.disposed, true);
      await assert.rejects(async () => subject.use(model), Disposed);
    });

    test("warm, where the model has it, leaves no trace: the same greedy answer after it; after dispose it throws", async (t) => {
      const model = await subject.backend.load(subject.model, { backend: subject.config });
      try {
        if (model.kind !== "text" || !model.warm) return t.skip("this model has nothing to warm");
        const before = await subject.use(model);
        await model.warm();
        assert.deepEqual(await subject.use(model), before);
      } finally {
        await model.dispose();
      }
      await assert.rejects(model.warm(), Disposed);
    });

    test("a load whose signal is already aborted rejects with Aborted", async () => {
      const controller = new AbortController();
      controller.abort();
      await assert.rejects(
        subject.backend.load(subject.model, { backend: subject.config, signal: controller.signal }),
        Aborted,
      );
    });

    test("a file the runtime cannot load rejects with ModelLoadFailed", async (t) => {
      if (!subject.broken) return t.skip("this backend reads no files");
      await assert.rejects(subject.backend.load(subject.broken, { backend: subject.config }), ModelLoadFailed);
    });

    test("the backend serves its format", () => {
      assert.equal(subject.backend.format, subject.model.format);
    });
  });
}

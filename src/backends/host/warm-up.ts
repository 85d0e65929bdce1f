/**
 * A spare host's warm-up: loads a throwaway tiny model, and warms it (`TextModel.warm`: a few short completions and
 * chats), before the host reports ready. The first loads in a fresh process cost about twice the CPU of later ones — V8
 * compiles node-llama-cpp's loading code and llama.cpp sets up its CPU buffers on first use (measured on the generated
 * medium q8_0 model: 150–330 ms of CPU for the first two loads, 70–140 ms after) —, and so do the first generations
 * (the completion and chat code compiled); a spare host exists so that a cold load, and the first request to the model
 * it loads, pay nothing a process that loaded before would not.
 */
import { rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BackendConfig } from "../../config/schema.js";
import { writeTinyLlamaGguf } from "../../models/gguf-writer.js";
import type { LlamaBackend } from "../llama.js";
import { processRunning } from "../common.js";

/** Loads (each with its warm generations) compiled by the warm-up: V8 optimises a function after a few calls, not one. */
const WARM_UP_LOADS = 2;

/**
 * Loads, warms and unloads a generated nano llama `WARM_UP_LOADS` times with `gpu`. Best effort: a host that cannot write a
 * temporary file is only slower on its first load, so a failure here is ignored.
 */
export async function warmUp(llama: LlamaBackend, gpu: BackendConfig["gpu"]): Promise<void> {
  let dir: string | undefined;
  // A host ended while it warms up (a spare stopped at shutdown: it exits at once) removes its folder on the way out.
  const removeOnExit = () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", removeOnExit);
  try {
    await removeOrphans();
    // Named before it exists: an exit while it is being made still knows what to remove.
    dir = join(tmpdir(), `${PREFIX}${process.pid}-${randomBytes(6).toString("hex")}`);
    await mkdir(dir, { mode: 0o700 });
    const path = join(dir, "nano.gguf");
    const size = await writeTinyLlamaGguf(path, { preset: "nano" });
    const descriptor = { name: "warm-up", key: path, path, format: "gguf" as const, fingerprint: { size, mtimeMs: 0 } };
    const config: BackendConfig = {
      gpu,
      threads: 1,
      context_size: 64,
      max_context_size: 64,
      batch_size: 64,
      mmap: false,
      parallel: 1,
      isolation: "in-process",
      spare_host: false,
      host_timeout_seconds: 30,
    };
    for (let i = 0; i < WARM_UP_LOADS; i++) {
      const model = await llama.load(descriptor, { backend: config });
      try {
        await model.warm?.();
      } finally {
        await model.dispose();
      }
    }
  } catch {
    // best effort (see above)
  } finally {
    process.off("exit", removeOnExit);
    if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

const PREFIX = "inferno-host-warm-up-";

/**
 * Removes the warm-up folders of hosts that are gone without removing theirs (killed with SIGKILL while warming up):
 * each folder's name carries its host's pid.
 */
async function removeOrphans(): Promise<void> {
  const names = await readdir(tmpdir()).catch(() => [] as string[]);
  for (const name of names) {
    const pid = /^inferno-host-warm-up-(\d+)-/.exec(name)?.[1];
    if (pid === undefined || Number(pid) === process.pid || processRunning(Number(pid))) continue;
    await rm(join(tmpdir(), name), { recursive: true, force: true }).catch(() => undefined);
  }
}

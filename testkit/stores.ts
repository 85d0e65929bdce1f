/**
 * Fixture model stores in a temporary directory, laid out as Ollama, LM Studio and the Hugging Face cache lay theirs
 * out, holding real tiny GGUF models from the project's writer:
 *
 *   await ollamaModel(root, "llama3", "latest", bytes);            // manifests/registry.ollama.ai/library/llama3/latest
 *   await hubFile(hub, "org/repo", "rev1", "m.gguf", bytes);       // models--org--repo/snapshots/rev1/m.gguf -> blobs
 */
import { createHash } from "node:crypto";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { OLLAMA_MODEL_LAYER } from "../src/models/stores/ollama.js";

export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

async function put(path: string, bytes: Uint8Array | string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
}

export interface OllamaModelOptions {
  /** `HOST/NAMESPACE` of the manifest path. Default `registry.ollama.ai/library`. */
  repository?: string;
  /** The manifest's text instead of a generated one (for bad manifests). */
  manifestText?: string;
  /** The size the manifest claims (default: the blob's). */
  claimedSize?: number;
  /** The digest the manifest names (default: the blob's sha256). */
  claimedSha256?: string;
  /** Leave the blob out (a manifest naming a missing blob). */
  withoutBlob?: boolean;
  /** Modelfile `PARAMETER`s: a params layer with this JSON. */
  params?: Record<string, unknown>;
  /** Modelfile `SYSTEM`: a system layer with this text. */
  system?: string;
  /** Modelfile `TEMPLATE`: a template layer with this text (default: a template layer whose blob is missing). */
  template?: string;
}

/** A Modelfile layer with its blob written, or none when `text` is absent. */
async function modelfileLayer(root: string, mediaType: string, text: string | undefined) {
  if (text === undefined) return [];
  const bytes = Buffer.from(text);
  await put(join(root, "blobs", `sha256-${sha256(bytes)}`), bytes);
  return [{ mediaType, digest: `sha256:${sha256(bytes)}`, size: bytes.length }];
}

/** Writes the blob and the manifest of one Ollama model; returns the blob's path. */
export async function ollamaModel(
  root: string,
  model: string,
  tag: string,
  bytes: Uint8Array,
  options: OllamaModelOptions = {},
) {
  const digest = `sha256:${options.claimedSha256 ?? sha256(bytes)}`;
  const blob = join(root, "blobs", `sha256-${options.claimedSha256 ?? sha256(bytes)}`);
  if (!options.withoutBlob) await put(blob, bytes);
  const config = Buffer.from("{}");
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.docker.distribution.manifest.v2+json",
    config: {
      mediaType: "application/vnd.docker.container.image.v1+json",
      digest: `sha256:${sha256(config)}`,
      size: config.length,
    },
    layers: [
      { mediaType: OLLAMA_MODEL_LAYER, digest, size: options.claimedSize ?? bytes.length },
      ...(options.template === undefined
        ? [{ mediaType: "application/vnd.ollama.image.template", digest: `sha256:${"0".repeat(64)}`, size: 10 }]
        : await modelfileLayer(root, "application/vnd.ollama.image.template", options.template)),
      ...(await modelfileLayer(
        root,
        "application/vnd.ollama.image.params",
        options.params && JSON.stringify(options.params),
      )),
      ...(await modelfileLayer(root, "application/vnd.ollama.image.system", options.system)),
    ],
  };
  const path = join(root, "manifests", options.repository ?? "registry.ollama.ai/library", model, tag);
  await put(path, options.manifestText ?? JSON.stringify(manifest));
  return blob;
}

/**
 * Adds `file` (a path inside the snapshot) to snapshot `revision` of a Hugging Face cache repository, as the hub
 * client does: the bytes in `blobs/<sha256>`, the snapshot entry a relative symlink to it. `main` also writes
 * `refs/main`. Returns the snapshot entry's path.
 */
export async function hubFile(
  hub: string,
  repo: string,
  revision: string,
  file: string,
  bytes: Uint8Array,
  main = true,
) {
  const repoDir = join(hub, `models--${repo.split("/").join("--")}`);
  const blob = join(repoDir, "blobs", sha256(bytes));
  await put(blob, bytes);
  const entry = join(repoDir, "snapshots", revision, file);
  await mkdir(dirname(entry), { recursive: true });
  await symlink(relative(dirname(entry), blob), entry);
  if (main) await put(join(repoDir, "refs", "main"), revision);
  return entry;
}

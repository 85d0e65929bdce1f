/**
 * The configuration schema: every key Inferno reads, with its default, unit and meaning. The configuration reference
 * (docs/configuration.md) is generated from this file (`npm run docs`), and `npm test` checks that it is current, so the
 * descriptions below are the user documentation.
 */
import { z } from "zod";
import { isWildcardHost } from "./address.js";

/** The model stores Inferno can read (`model_stores`). Kept here, beside the key, so the schema imports nothing else. */
export const STORE_NAMES = ["ollama", "lmstudio", "huggingface"] as const;
export type StoreName = (typeof STORE_NAMES)[number];

/**
 * The longest duration a setting (TTLs, the save interval, `keep_alive` bounds) or a request's `keep_alive` may name:
 * 10 years. Node's timers overflow above 2^31-1 ms (24.8 days); Inferno chains them (`setLongTimeout`,
 * cache/clock.ts), so this is a sanity bound that keeps every deadline a representable date, not a timer limit.
 */
export const MAX_DURATION_SECONDS = 10 * 365 * 24 * 3600;
const MAX_DURATION_TEXT = `at most ${MAX_DURATION_SECONDS} (10 years)`;

/** The most requests `cache.request_log_size` may keep (and a state file may hold): a million, ~10 MB in memory. */
export const MAX_REQUEST_LOG_SIZE = 1_000_000;

/** The shortest `cache.usage_half_life_hours`: 36 s. */
const MIN_HALF_LIFE_HOURS = 0.01;
/** Most tokens of a context or a batch: 2^24, far above any model's context, far below what would overflow. */
const MAX_TOKENS_SETTING = 16_777_216;

/** Copies of one model a fleet may be told to keep (`min_copies`, `max_copies`). */
const MAX_FLEET_COPIES = 64;

/**
 * `fleet.scale_up_rpm`'s default. A copy with one sequence serves 60 × (tokens/s) ÷ (tokens per answer) requests a
 * minute: this machine's bench measured 733–807 tok/s for its medium test model on one thread (the `threads` section);
 * with 400-token answers that is about 120 requests a minute. The next copy is asked for at half of that, so it is
 * loaded before the first saturates.
 */
export const DEFAULT_SCALE_UP_RPM = 60;

/** Whole, non-negative number of seconds, at most `MAX_DURATION_SECONDS`. */
const seconds = () => z.number().int().nonnegative().max(MAX_DURATION_SECONDS);

export const modelOverrideSchema = z
  .strictObject({
    ttl_seconds: seconds()
      .optional()
      .describe(
        `Idle time in seconds before this model is unloaded; overrides \`cache.model_ttl_seconds\`. 0 = never; ${MAX_DURATION_TEXT}.`,
      ),
    pinned: z
      .boolean()
      .optional()
      .describe(
        "Load this model at start and never evict it (like listing it in `cache.always_warm`). In a fleet it also means at least one copy in the fleet at all times.",
      ),
    min_copies: z
      .number()
      .int()
      .nonnegative()
      .max(MAX_FLEET_COPIES)
      .optional()
      .describe(
        "In a fleet: copies of this model the fleet keeps loaded whatever the traffic (a node that fails is replaced by another copy). Default 0 (1 when `pinned`).",
      ),
    max_copies: z
      .number()
      .int()
      .positive()
      .max(MAX_FLEET_COPIES)
      .optional()
      .describe(
        "In a fleet: copies of this model at most, however busy it is (`fleet.scale_up_rpm`). Default 4. Not below `min_copies`.",
      ),
  })
  .refine((o) => o.min_copies === undefined || o.max_copies === undefined || o.max_copies >= o.min_copies, {
    message: "max_copies must not be below min_copies",
    path: ["max_copies"],
  })
  .describe('Per-model overrides, keyed by model name (`[cache.models."my_model.gguf"]`).');

/**
 * A per-model preset (`[models."NAME"]`): what an Ollama Modelfile or llama-swap's per-model settings give. NAME is a
 * model name of its own that every door resolves (the CLI, `/v1`, `/api`), with its aliases.
 */
export const presetSchema = z
  .strictObject({
    file: z
      .string()
      .min(1)
      .optional()
      .describe(
        "The model this preset runs: any name Inferno resolves (a file name, a path in a models directory, a store tag such as `llama3:8b`). Default: NAME itself, so a preset can also give an existing model its settings.",
      ),
    aliases: z.array(z.string().min(1)).default([]).describe("Other names of this preset (each also with `:latest`)."),
    context_size: z
      .number()
      .int()
      .positive()
      .optional()
      .describe("Context window in tokens; default `backend.context_size`."),
    parallel: z.number().int().positive().optional().describe("Concurrent sequences; default `backend.parallel`."),
    threads: z.number().int().nonnegative().optional().describe("CPU threads (0 = auto); default `backend.threads`."),
    gpu_layers: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .describe("Layers offloaded to the GPU; default `backend.gpu_layers`."),
    template: z
      .string()
      .min(1)
      .optional()
      .describe(
        "A Jinja chat template used instead of the one in the model's file (Hugging Face's `chat_template` format).",
      ),
    system: z.string().optional().describe("A system message put first in every chat whose request sends none."),
    temperature: z.number().min(0).optional().describe("Default sampling temperature (a request's own value wins)."),
    top_p: z.number().min(0).max(1).optional().describe("Default nucleus sampling (`top_p`)."),
    top_k: z.number().int().nonnegative().optional().describe("Default top-k (0 = off)."),
    min_p: z.number().min(0).max(1).optional().describe("Default min-p (0 = off)."),
    repeat_penalty: z.number().positive().optional().describe("Default repeat penalty (1 = off)."),
    presence_penalty: z.number().min(-2).max(2).optional().describe("Default presence penalty."),
    frequency_penalty: z.number().min(-2).max(2).optional().describe("Default frequency penalty."),
    stop: z.array(z.string().min(1)).optional().describe("Default stop strings."),
  })
  .describe('A model preset: `[models."NAME"]`.');

export const cacheSchema = z
  .strictObject({
    persist_cache: z
      .boolean()
      .default(true)
      .describe("Save usage statistics to `<cache_dir>/cache_state.bin.zst` and restore them at start."),
    cache_dir: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Directory of the state file. Default: the platform cache directory + `/inferno` (`$XDG_CACHE_HOME/inferno` or `~/.cache/inferno` on Linux). `~` and `$VAR` are expanded.",
      ),
    prompt_cache: z
      .boolean()
      .default(true)
      .describe(
        "Reuse evaluated prompt prefixes across requests (a loaded model's sequences keep what they evaluated; a request evaluates only what follows the longest prefix it shares). The answer is the same either way; false evaluates every prompt whole, whatever a request's `cache_prompt` asks. See docs/prompt-cache.md.",
      ),
    prompt_cache_mb: z
      .number()
      .int()
      .nonnegative()
      .default(1024)
      .describe(
        "Disk budget, in MiB, for evaluated prompt prefixes saved under `<cache_dir>/prompts/` when a GGUF model unloads (eviction, TTL, shutdown) and restored when it loads again (also by the start-up warm-up), so a request sharing one does not evaluate it again. The least valuable (reuses x tokens) are deleted first to stay within it. 0 = nothing saved. Needs `prompt_cache` and `persist_cache`. See docs/prompt-cache.md.",
      ),
    prompt_cache_per_key: z
      .boolean()
      .default(false)
      .describe(
        "Keep each API key's evaluated prefixes to itself: a prefix evaluated (or saved) for a request with one `Authorization: Bearer` key is never reused for a request with another key or none. Off, every caller shares them (a caller could time whether a prefix was seen before). See docs/prompt-cache.md, Privacy.",
      ),
    max_cached_models: z
      .number()
      .int()
      .positive()
      .default(5)
      .describe("Most models resident at once. Loading one more evicts an idle model first."),
    max_memory_mb: z
      .number()
      .int()
      .nonnegative()
      .default(0)
      .describe(
        "Memory budget for resident models, in MiB. 0 = auto: half of the system's total RAM. A model that can never fit is refused.",
      ),
    model_ttl_seconds: seconds()
      .default(3600)
      .describe(
        `Idle seconds after a model's last request ends before it is unloaded. 0 = never unload for idleness; ${MAX_DURATION_TEXT}.`,
      ),
    enable_warmup: z.boolean().default(true).describe("Load the most valuable models in the background at start."),
    warmup_strategy: z
      .enum(["usage", "recent", "priority", "hybrid", "none"])
      .default("hybrid")
      .describe(
        "How warm-up ranks models: `usage` (decayed frequency x load cost), `recent` (last used first), `priority` (`always_warm` order), `hybrid` (pinned, then usage), `none`.",
      ),
    warmup_concurrency: z
      .number()
      .int()
      .positive()
      .default(1)
      .describe("Models loaded at the same time during warm-up."),
    always_warm: z
      .array(z.string().min(1))
      .default([])
      .describe("Model names loaded at start and never evicted (pinned), in priority order."),
    persist_interval_seconds: seconds()
      .default(300)
      .describe(
        `Seconds between periodic saves; a save happens only when something changed. 0 = only on demand and at close; ${MAX_DURATION_TEXT}.`,
      ),
    state_timeout_seconds: z
      .number()
      .int()
      .min(1)
      .max(3600)
      .default(10)
      .describe(
        "Bound, in seconds, on each file-system call of the state file (its read, write, fsync, rename and lock): a call that takes longer fails the save or restore with `StateTimeout` instead of hanging the server or its shutdown (a hung disk, a stuck network mount). A whole save or restore is bounded at this plus 5 s. Raise it for a slow network file system. At most 3600.",
      ),
    restore_window_hours: z
      .number()
      .nonnegative()
      .default(24)
      .describe("Only models used within this many hours are warmed at start. 0 = no limit."),
    usage_half_life_hours: z
      .number()
      .min(MIN_HALF_LIFE_HOURS)
      .default(24)
      .describe(
        `Half-life, in hours, of the exponentially decayed usage frequency that ranks models. At least ${MIN_HALF_LIFE_HOURS} (36 s: shorter, every frequency decays to nothing between two requests); a huge value means no decay.`,
      ),
    eviction_policy: z
      .enum(["lru", "cost-aware", "reload-cost"])
      .default("reload-cost")
      .describe(
        "Which idle model to evict first: `lru` (least recently used), `cost-aware` (GreedyDual-Size-Frequency: keeps models that are slow to load, small and often used) or `reload-cost` (keeps the models whose expected reload time — usage frequency x measured load time — per share of the memory or count limit is highest). The default is the one `npm run bench` measured closest to the offline optimum.",
      ),
    load_failure_cooldown_seconds: seconds()
      .default(30)
      .describe(
        "After a failed load, further loads of that model are refused for this many seconds (not after a file refused as invalid before its load: each request gets that cause).",
      ),
    missing_retention_days: z
      .number()
      .nonnegative()
      .default(30)
      .describe(
        "Days the statistics of a model whose file is missing at start are kept (marked `missing`) before they are dropped. A models directory that is absent altogether changes nothing.",
      ),
    request_log_size: z
      .number()
      .int()
      .nonnegative()
      .max(MAX_REQUEST_LOG_SIZE)
      .default(10_000)
      .describe(
        `Recent requests remembered (model, time, hit/miss, load time) and saved with the statistics, for \`inferno cache advise\`; the oldest is dropped first. 0 = no log; at most ${MAX_REQUEST_LOG_SIZE}.`,
      ),
    models: z
      .record(z.string().min(1), modelOverrideSchema)
      .default({})
      .describe(
        'Per-model overrides: `[cache.models."NAME"]` with `ttl_seconds`, `pinned`, and in a fleet `min_copies` and `max_copies`.',
      ),
  })
  .describe("The model cache: what stays loaded, for how long, and what is saved.");

export const backendSchema = z
  .strictObject({
    threads: z
      .number()
      .int()
      .nonnegative()
      .default(0)
      .describe(
        "CPU threads for inference. 0 = auto: the physical cores less one, at least one (see docs/models.md, Threads); never more threads than cores.",
      ),
    context_size: z
      .number()
      .int()
      .positive()
      .max(MAX_TOKENS_SETTING)
      .default(2048)
      .describe(`Context window in tokens for GGUF models; at most ${MAX_TOKENS_SETTING}.`),
    max_context_size: z
      .number()
      .int()
      .positive()
      .max(MAX_TOKENS_SETTING)
      .default(32768)
      .describe(
        "Largest context a request (Ollama's `num_ctx`) or a preset may ask for, in tokens. A model loaded with another context than `context_size` is a separate cache entry (one per size), with its own memory.",
      ),
    batch_size: z
      .number()
      .int()
      .positive()
      .max(MAX_TOKENS_SETTING)
      .default(512)
      .describe(`Prompt-processing batch size in tokens; at most ${MAX_TOKENS_SETTING}.`),
    gpu: z
      .enum(["auto", "false", "cuda", "vulkan", "metal"])
      .or(z.literal(false))
      .default("auto")
      .describe("GPU backend for llama.cpp: `auto`, `false` (CPU only), `cuda`, `vulkan` or `metal`."),
    gpu_layers: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .describe(
        "Layers of a GGUF model offloaded to the GPU (Ollama's `num_gpu`). Default: as many as fit (node-llama-cpp's `auto`); 0 with `gpu = false`.",
      ),
    mmap: z
      .boolean()
      .default(false)
      .describe(
        "Memory-map GGUF weights instead of reading them into memory. Off by default: on CPUs where llama.cpp repacks weights (Q4_0 and similar on AVX2), the mapped file stays resident beside the repacked copy, so memory is counted twice (measured in docs/hosts.md).",
      ),
    parallel: z
      .number()
      .int()
      .nonnegative()
      .default(0)
      .describe(
        "Concurrent sequences per loaded GGUF model; further requests to that model queue. 0 = auto, decided per model load as Ollama does: the machine's most (4 with at least 8 GiB of memory and 2 cores, 2 with at least 4 GiB, else 1) when the model's estimate with that many fits `cache.max_memory_mb` (or the automatic limit) less what pinned models hold, else fewer down to 1; `inferno ps` shows the count (PARALLEL). Sequences of one model decode as one batch, so concurrent clients get more tokens/s in all (measured with 4–8 clients: 1 sequence 0.73–0.80× node-llama-cpp on as many sequences, 4 sequences 0.90–0.96×); each sequence holds its own KV cache of `context_size` tokens, counted in the model's memory (768 MiB at 2048 tokens for a model without grouped-query attention such as Phi-3-mini). A number above 0 is used as given.",
      ),
    isolation: z
      .enum(["process", "in-process"])
      .default("process")
      .describe(
        "Where models run. `process`: each loaded model in its own model host process, so a crash, a killed host or a model file overwritten while loaded fails only that model's requests (it is unloaded and loads again) and memory is what the OS measures. `in-process`: inside the calling process (for a single script, or tests); a crash in llama.cpp ends that process.",
      ),
    spare_host: z
      .boolean()
      .default(true)
      .describe(
        "Keep one spare model host started (with `isolation = \"process\"`): a load takes it, so the model's load pays neither a process start nor llama.cpp's, and another is started after each load. It costs an idle process (~100 MiB resident, `npm run bench -- --only latency` measures it). `false` where memory is tight: no host waits idle, and each load first starts its own host (process and llama.cpp start, 1–3 s on a small machine before the model's first token).",
      ),
    host_timeout_seconds: z
      .number()
      .int()
      .positive()
      .max(3600)
      .default(30)
      .describe(
        'The model host watchdog (with `isolation = "process"`): a host with work in flight that sends nothing — no streamed text, no answer to the ping it is sent after each quiet second — for this many seconds, plus one second per MiB of the request it works on, is killed and its model counted as crashed: its requests fail with 503 and `Retry-After`, evict and clear stop waiting for it, and the next request loads the model again. At most 3600.',
      ),
  })
  .describe("How models are run (llama.cpp and ONNX Runtime).");

export const serverSchema = z
  .strictObject({
    host: z.string().min(1).default("127.0.0.1").describe("Address `inferno serve` binds to."),
    port: z
      .number()
      .int()
      .min(0)
      .max(65535)
      .default(8080)
      .describe("TCP port `inferno serve` listens on. 0 = any free port."),
    api_key: z
      .string()
      .default("")
      .describe(
        "When set, every `/v1` and `/api` route needs `Authorization: Bearer <key>` (`/health`, `/ready`, `/metrics` and the status page itself stay open). The CLI uses it to reach the server.",
      ),
    allowed_hosts: z
      .array(z.string().min(1).max(253))
      .max(1000)
      .default([])
      .describe(
        "Host names the server answers besides loopback and private names (`localhost`, `*.localhost`, `*.local`, `*.internal`), IP addresses, this machine's host name and `server.host` itself: a request whose `Host` header names anything else is refused with 403, so a web page cannot reach the server through a DNS name it controls (DNS rebinding). `*.example.com` also matches every subdomain; `*` allows every host. Needed when the server is reached by a name (a reverse proxy, `http://myhost:8080`).",
      ),
    allowed_origins: z
      .array(z.string().min(1).max(2048))
      .max(1000)
      .default([])
      .describe(
        "Origins (`scheme://host[:port]`, as a browser sends them in `Origin`) whose web pages may call the API, like Ollama's `OLLAMA_ORIGINS`: a request from any other origin is refused with 403, and only these get CORS headers. Pages served by the server itself (its status page) are always allowed. `*` allows every origin (any web page you open could then use the server). Default: none.",
      ),
    max_queue: z
      .number()
      .int()
      .nonnegative()
      .default(64)
      .describe("Requests that may wait for a model; beyond this the server answers 503 with `Retry-After`."),
    max_tokens_limit: z
      .number()
      .int()
      .nonnegative()
      .default(0)
      .describe(
        "Most tokens one generation may produce, whatever a request asks (`max_tokens`, `max_completion_tokens`, `max_output_tokens`, Ollama's `num_predict`): a larger request is capped to it, and it is the default when a request names none. 0 = no limit but the context: a generation always ends when the loaded context (`backend.context_size`) is full.",
      ),
    max_messages: z
      .number()
      .int()
      .positive()
      .default(2048)
      .describe(
        "Most messages in one chat request (`messages` of `/v1/chat/completions` and `/api/chat`, `input` items of `/v1/responses`); more is a 400.",
      ),
    max_prompts: z
      .number()
      .int()
      .positive()
      .default(64)
      .describe(
        "Most prompts in one `/v1/completions` request (a list of prompts is generated one after another); more is a 400.",
      ),
    max_embedding_inputs: z
      .number()
      .int()
      .positive()
      .default(2048)
      .describe("Most inputs in one embeddings request (`input` of `/v1/embeddings` and `/api/embed`); more is a 400."),
    headers_timeout_seconds: z
      .number()
      .int()
      .min(1)
      .max(300)
      .default(60)
      .describe(
        "Seconds a client has to send a request's headers; a client still sending them after this is answered 408 and its connection closed (checked every second, so the bound holds to about a second). At most 300, the bound on a whole request, body included.",
      ),
    keep_alive_min_seconds: seconds()
      .default(0)
      .describe(`Lower bound on a request's \`keep_alive\`, in seconds; ${MAX_DURATION_TEXT}.`),
    keep_alive_max_seconds: seconds()
      .default(0)
      .describe(
        `Upper bound on a request's \`keep_alive\`, in seconds. 0 = no upper bound (a request may still name at most ${MAX_DURATION_SECONDS} s, 10 years, or -1 for forever).`,
      ),
  })
  .describe("The HTTP server.");

/**
 * A fleet's name becomes the Redis hash tag of every key (`inferno:{<name>}:…`), so it may not hold the braces that
 * delimit the tag; letters, digits and `._-` keep keys readable in `redis-cli`.
 */
const FLEET_NAME = /^[A-Za-z0-9._-]+$/;

export const fleetSchema = z
  .strictObject({
    redis_url: z
      .string()
      .default("")
      .refine((url) => url === "" || /^rediss?:\/\/[^\s]+$/.test(url), {
        message:
          "expected a redis:// or rediss:// URL (user and password may be in it: redis://user:password@host:6379/0)",
      })
      .describe(
        "The Redis (or Valkey) server that coordinates the fleet: `redis://host:6379/0`, `rediss://` for TLS, a user and password in the URL (`redis://user:password@host:6379`). Empty = a single node, exactly as without a fleet. Redis 7.0 or newer. The password is never logged.",
      ),
    name: z
      .string()
      .regex(FLEET_NAME, { message: "letters, digits, '.', '_' and '-' only" })
      .default("default")
      .describe(
        "The fleet's name: nodes with the same `redis_url` and name form one fleet. Every key lives under `inferno:{<name>}:` (one hash tag, so the fleet's scripts also run on Redis Cluster).",
      ),
    node_id: z
      .string()
      .min(1)
      .optional()
      .describe("This node's id in the fleet, unique within it. Default: `<host>:<port>` of `advertise_url`."),
    advertise_url: z
      .string()
      .regex(/^https?:\/\/[^\s/]+\/?$/, { message: "expected http://host:port or https://host:port" })
      .optional()
      .describe(
        "The URL other nodes dial to reach this one (`http://10.0.0.5:8080`). Default: `http://<server.host>:<server.port>`, which a wildcard bind (`0.0.0.0`, `::`) cannot give: such a node must set it.",
      ),
    heartbeat_seconds: z
      .number()
      .positive()
      .max(3600)
      .default(5)
      .describe("Seconds between this node's heartbeats (its record and lease in Redis)."),
    node_timeout_seconds: z
      .number()
      .positive()
      .max(MAX_DURATION_SECONDS)
      .default(15)
      .describe(
        "Seconds after its last heartbeat when a node counts as dead: any live node then removes its copies. Must exceed `heartbeat_seconds`.",
      ),
    scale_up_rpm: z
      .number()
      .nonnegative()
      .default(DEFAULT_SCALE_UP_RPM)
      .describe(
        `Requests per minute per copy above which the fleet loads one more copy of a model (up to its \`max_copies\`), on the node placement picks. Default ${DEFAULT_SCALE_UP_RPM}: half of what one copy serves at ~800 tokens/s (this machine's bench, medium test model) with 400-token answers; set it from your models' own speed. 0 = never by rate (a second copy for regular use, and \`min_copies\`, still apply).`,
      ),
    secret: z
      .string()
      .optional()
      .describe(
        "The shared secret nodes send with forwarded requests (a node refuses a forward without it), never the client's key. Default: `server.api_key`.",
      ),
  })
  .describe(
    "Several machines serving as one model cache, coordinated through Redis: each model loads on one node and any node forwards requests to it.",
  );

export const configSchema = z
  .strictObject({
    models_dir: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Directory searched (recursively) for `.gguf` and `.onnx` models: the first of the models directories, where `inferno models demo` and the server's first run write. Default: per user, the platform data directory + `/inferno/models` (`$XDG_DATA_HOME/inferno/models` or `~/.local/share/inferno/models` on Linux, `~/Library/Application Support/inferno/models` on macOS), whatever the current directory. `~` and `$VAR` are expanded; a relative path is taken from the file that sets it (or the current directory).",
      ),
    models_dirs: z
      .array(z.string().min(1))
      .default([])
      .describe(
        "More models directories, searched after `models_dir` in this order; when two hold the same model name, the earlier one wins. `models_dir` is always the first entry: when no source sets `models_dir`, this list's first entry takes its place (and the default directory is not searched). Duplicates are dropped. `~` and `$VAR` are expanded in each entry.",
      ),
    model_stores: z
      .array(z.enum(STORE_NAMES))
      .default([...STORE_NAMES])
      .refine((stores) => new Set(stores).size === stores.length, { message: "each store may be listed once" })
      .describe(
        "Model stores of other tools to discover models in, read-only, after the models directories: `ollama` (`$OLLAMA_MODELS` or `~/.ollama/models`, names `NAME:TAG`), `lmstudio` (`~/.lmstudio/models` and `~/.cache/lm-studio/models`, names `publisher/repo/file.gguf`), `huggingface` (`$HF_HUB_CACHE`, `$HF_HOME/hub` or `~/.cache/huggingface/hub`, names `ORG/REPO/FILE`). Default: all three, each read when present on the machine (never written); `[]` reads none. `inferno models list --stores` shows what each adds.",
      ),
    allow_outside_models_dir: z
      .boolean()
      .default(false)
      .describe(
        "Allow model names that resolve outside the models directories and enabled stores (absolute paths, `..`, escaping symlinks).",
      ),
    models: z
      .record(z.string().min(1), presetSchema)
      .optional()
      .describe(
        'Model presets: `[models."NAME"]` with `file`, `aliases`, load settings (`context_size`, `parallel`, `threads`, `gpu_layers`), a chat `template`, a `system` message and default sampling (`temperature`, `top_p`, `top_k`, `min_p`, `repeat_penalty`, `presence_penalty`, `frequency_penalty`, `stop`). NAME and the aliases are model names everywhere (CLI, `/v1`, `/api`); a model loaded with a preset\'s load settings is a cache entry of its own.',
      ),
    cache: cacheSchema.prefault({}),
    backend: backendSchema.prefault({}),
    server: serverSchema.prefault({}),
    fleet: fleetSchema.prefault({}),
  })
  .superRefine((config, ctx) => {
    const pins = new Set([
      ...config.cache.always_warm,
      ...Object.entries(config.cache.models)
        .filter(([, o]) => o.pinned === true)
        .map(([name]) => name),
    ]);
    if (pins.size > config.cache.max_cached_models) {
      ctx.addIssue({
        code: "custom",
        path: ["cache", "always_warm"],
        message:
          `pins ${pins.size} models (cache.always_warm and pinned = true) but cache.max_cached_models is ` +
          `${config.cache.max_cached_models}: pinned models are never evicted, so every other model would be refused`,
      });
    }
    const { keep_alive_min_seconds: min, keep_alive_max_seconds: max } = config.server;
    if (max !== 0 && min > max) {
      ctx.addIssue({
        code: "custom",
        path: ["server", "keep_alive_min_seconds"],
        message: `must not exceed server.keep_alive_max_seconds (${max}), found ${min}`,
      });
    }
    const fleet = config.fleet;
    if (fleet.redis_url !== "" && fleet.node_timeout_seconds <= fleet.heartbeat_seconds) {
      ctx.addIssue({
        code: "custom",
        path: ["fleet", "node_timeout_seconds"],
        message: `must exceed fleet.heartbeat_seconds (${fleet.heartbeat_seconds}), found ${fleet.node_timeout_seconds}: a live node would be taken for dead between two heartbeats`,
      });
    }
    if (fleet.redis_url !== "" && fleet.advertise_url === undefined && isWildcardHost(config.server.host)) {
      ctx.addIssue({
        code: "custom",
        path: ["fleet", "advertise_url"],
        message: `must be set when server.host is the wildcard ${config.server.host}: other nodes cannot dial a wildcard address, so name the one they should use (fleet.advertise_url = "http://10.0.0.5:${config.server.port}")`,
      });
    }
  });

/** What the schema alone produces: `cache.cache_dir` may still be unset. */
export type SchemaConfig = z.infer<typeof configSchema>;
/** The cache section after loading: `cache_dir` is always resolved to an absolute path. */
export type CacheConfig = SchemaConfig["cache"] & { cache_dir: string };
/**
 * The configuration after loading (`loadConfig()`): every default applied, every path absolute, and `models_dirs` the
 * whole list of models directories with `models_dir` as its first entry.
 */
export type InfernoConfig = Omit<SchemaConfig, "cache" | "models_dir"> & { models_dir: string; cache: CacheConfig };
export type BackendConfig = SchemaConfig["backend"];
export type ServerConfig = SchemaConfig["server"];
export type FleetConfig = SchemaConfig["fleet"];
export type ModelOverride = z.infer<typeof modelOverrideSchema>;
export type Preset = z.infer<typeof presetSchema>;

/** Keys whose values are filesystem paths (or lists of them): `~` and `$VAR` are expanded and relative paths resolved. */
export const PATH_KEYS = ["models_dir", "models_dirs", "cache.cache_dir"] as const;

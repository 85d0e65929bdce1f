/**
 * A generated set of state documents that pass every type check but hold a value out of range (issue 14): absurd or
 * far-off times, negative, fractional or huge counts, sizes beyond 2^53, over-long strings and lists.
 */
const YEAR = 365.25 * 24 * 3600_000;

/** A valid current-version document (times around `now`) to derive the bad ones from. */
export function validDocument(now: number): Record<string, unknown> {
  return {
    format: "inferno-cache-state",
    schema_version: 2,
    saved_at: now - 3600_000,
    counters: {
      hits: 3,
      misses: 1,
      loads: 1,
      load_failures: 0,
      evictions: { capacity_count: 0, capacity_memory: 0, ttl: 1, manual: 0, file_changed: 0, clear: 0, shutdown: 0 },
      warmups: 0,
      unknown_model_requests: 0,
      coalesced: 0,
    },
    models: [
      {
        key: "/m/a.gguf",
        name: "a.gguf",
        format: "gguf",
        fingerprint: { size: 1000, mtimeMs: now - 7200_000 },
        metadata: {
          memory_bytes: 4096,
          gguf: { architecture: "llama", quantization: "F16", parameter_count: 100, context_length: 512 },
        },
        usage: {
          requests: 4,
          hits: 3,
          misses: 1,
          loads: 1,
          last_used_at: now - 60_000,
          frequency: { value: 4, at: now - 60_000 },
          load_ms_total: 120,
          load_ms_samples: [120],
        },
        priority: 1.5,
        pinned: false,
        missing_since: null,
      },
    ],
  };
}

type Path = Array<string | number>;

const TIMES: Path[] = [
  ["saved_at"],
  ["models", 0, "fingerprint", "mtimeMs"],
  ["models", 0, "usage", "last_used_at"],
  ["models", 0, "usage", "frequency", "at"],
  ["models", 0, "missing_since"],
];
const COUNTS: Path[] = [
  ["counters", "hits"],
  ["counters", "evictions", "ttl"],
  ["counters", "coalesced"],
  ["models", 0, "fingerprint", "size"],
  ["models", 0, "metadata", "memory_bytes"],
  ["models", 0, "metadata", "gguf", "context_length"],
  ["models", 0, "usage", "requests"],
  ["models", 0, "usage", "loads"],
];
const AMOUNTS: Path[] = [
  ["models", 0, "usage", "frequency", "value"],
  ["models", 0, "usage", "load_ms_total"],
  ["models", 0, "usage", "load_ms_samples", 0],
  ["models", 0, "priority"],
];
const STRINGS: Path[] = [
  ["models", 0, "key"],
  ["models", 0, "name"],
  ["models", 0, "metadata", "gguf", "architecture"],
];

function setAt(document: Record<string, unknown>, path: Path, value: unknown): void {
  let node = document as Record<string | number, unknown>;
  for (const step of path.slice(0, -1)) node = node[step] as Record<string | number, unknown>;
  node[path[path.length - 1] as string | number] = value;
}

/** Every (field, bad value) combination, as `[description, document]`. */
export function outOfRangeDocuments(now: number): Array<[string, Record<string, unknown>]> {
  const huge = [1e308, -1e308, 2 ** 53, -1];
  const cases: Array<[Path, unknown[]]> = [
    ...TIMES.map((p): [Path, unknown[]] => [
      p,
      [1e308, -1e308, 2 ** 53, 8.64e15 + 1, now + 101 * YEAR, now - 101 * YEAR],
    ]),
    ...COUNTS.map((p): [Path, unknown[]] => [p, [...huge, 1.5, 2 ** 60]]),
    ...AMOUNTS.map((p): [Path, unknown[]] => [p, huge]),
    ...STRINGS.map((p): [Path, unknown[]] => [p, ["x".repeat(5000)]]),
    [["models", 0, "usage", "load_ms_samples"], [Array.from({ length: 2000 }, () => 1)]],
  ];
  const out: Array<[string, Record<string, unknown>]> = [];
  for (const [path, values] of cases) {
    for (const value of values) {
      const document = validDocument(now);
      setAt(document, path, value);
      const shown =
        typeof value === "string"
          ? `a ${value.length}-character string`
          : Array.isArray(value)
            ? `${value.length} items`
            : String(value);
      out.push([`${path.join(".")} = ${shown}`, document]);
    }
  }
  return out;
}

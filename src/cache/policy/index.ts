/** Pure policy functions of the cache: eviction choice, decayed frequency, warm-up ranking. No I/O, no clock. */
export * from "./eviction.js";
export * from "./frequency.js";
export * from "./warmup.js";

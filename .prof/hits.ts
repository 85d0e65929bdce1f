import { cacheCoreBench } from "../bench/cache-core.js";
process.env.BENCH_ONLY = "hits";
await cacheCoreBench();

export * from "./keys.js";
export * from "./load.js";
export * from "./paths.js";
export * from "./schema.js";
export * from "./values.js";

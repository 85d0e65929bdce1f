export * from "./keys.js";
export * from "./load.js";
export * from "./paths.js";
export * from "./schema.js";
export * from "./values.js";
export * from "./edit.js";
export * from "./starter.js";
export * from "./render.js";

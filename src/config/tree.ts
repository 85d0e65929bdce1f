/** Parsed TOML as plain data: tables are plain objects (a TOML date is a Date, and a list an array, never a table). */
export type Tree = Record<string, unknown>;

export const isTable = (value: unknown): value is Tree =>
  typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date);

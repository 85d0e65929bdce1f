/**
 * Buffered reads from a file (or a buffer) at a moving position, so header parsers read only the bytes they need —
 * a 7 GB model's header is a few MB — and can skip the rest.
 */
import { type FileHandle, open } from "node:fs/promises";
import { ModelInvalid } from "../errors/index.js";

/** A read went past the end of the data. Parsers turn it into a "truncated" ModelInvalid. */
export class EndOfData extends Error {
  constructor(
    readonly position: number,
    readonly wanted: number,
    readonly size: number,
  ) {
    super(`needed ${wanted} bytes at offset ${position}, but the data ends at ${size}`);
  }
}

const BLOCK = 64 * 1024;

export class FileCursor {
  position = 0;
  private block: Buffer = Buffer.alloc(0);
  private blockStart = 0;

  private constructor(
    private readonly handle: FileHandle | null,
    readonly size: number,
    initial?: Buffer,
  ) {
    if (initial) this.block = initial;
  }

  static async open(path: string): Promise<FileCursor> {
    const handle = await open(path, "r");
    try {
      const { size } = await handle.stat();
      return new FileCursor(handle, size);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  static fromBuffer(buffer: Buffer): FileCursor {
    return new FileCursor(null, buffer.length, buffer);
  }

  get remaining(): number {
    return this.size - this.position;
  }

  /** The next `n` bytes, advancing past them. The returned buffer may share memory with the cursor's block. */
  async bytes(n: number): Promise<Buffer> {
    if (n < 0 || this.position + n > this.size) throw new EndOfData(this.position, n, this.size);
    const offset = this.position - this.blockStart;
    if (offset < 0 || offset + n > this.block.length) await this.fill(n);
    const start = this.position - this.blockStart;
    this.position += n;
    return this.block.subarray(start, start + n);
  }

  /** Moves forward `n` bytes without reading them. */
  skip(n: number): void {
    if (n < 0 || this.position + n > this.size) throw new EndOfData(this.position, n, this.size);
    this.position += n;
  }

  seek(position: number): void {
    if (position < 0 || position > this.size) throw new EndOfData(position, 0, this.size);
    this.position = position;
  }

  private async fill(n: number): Promise<void> {
    if (!this.handle) throw new EndOfData(this.position, n, this.size);
    const length = Math.min(Math.max(n, BLOCK), this.size - this.position);
    const buffer = Buffer.alloc(length);
    let read = 0;
    while (read < length) {
      const { bytesRead } = await this.handle.read(buffer, read, length - read, this.position + read);
      if (bytesRead === 0) throw new EndOfData(this.position + read, length - read, this.position + read);
      read += bytesRead;
    }
    this.block = buffer;
    this.blockStart = this.position;
  }

  async u8(): Promise<number> {
    return (await this.bytes(1)).readUInt8(0);
  }
  async u32(): Promise<number> {
    return (await this.bytes(4)).readUInt32LE(0);
  }
  /** A u64 as a number; throws RangeError above 2^53 (no real header field gets near it). */
  async u64(): Promise<number> {
    const value = (await this.bytes(8)).readBigUInt64LE(0);
    if (value > BigInt(Number.MAX_SAFE_INTEGER))
      throw new RangeError(`64-bit value ${value} at offset ${this.position - 8} is implausibly large`);
    return Number(value);
  }

  async close(): Promise<void> {
    await this.handle?.close();
  }
}

/** ModelInvalid for a file the system refuses to read (permissions, a directory, I/O error). */
export function unreadable(path: string, error: unknown): ModelInvalid {
  const code = (error as NodeJS.ErrnoException).code;
  const problem =
    code === "EISDIR"
      ? "it is a directory, not a model file"
      : `the file cannot be read (${code ?? (error as Error).message})`;
  return new ModelInvalid(`${path} is not a valid model: ${problem}`, { cause: error, details: { path, problem } });
}

/**
 * Opens the model file at `path`, parses its header with `parse` and closes it. Every failure becomes a ModelInvalid:
 * an empty file says so, `classify` names format-specific problems (truncation, corrupt fields) in the format's own
 * words, and anything else is an unreadable file.
 */
export async function readHeaderFile<T>(
  path: string,
  invalid: (problem: string, details?: Record<string, unknown>) => ModelInvalid,
  parse: (cursor: FileCursor) => Promise<T>,
  classify: (error: unknown, cursor: FileCursor) => ModelInvalid | undefined,
): Promise<T> {
  let cursor: FileCursor;
  try {
    cursor = await FileCursor.open(path);
  } catch (error) {
    throw unreadable(path, error);
  }
  try {
    if (cursor.size === 0) throw invalid("the file is empty");
    return await parse(cursor);
  } catch (error) {
    if (error instanceof ModelInvalid) throw error;
    throw classify(error, cursor) ?? unreadable(path, error);
  } finally {
    await cursor.close();
  }
}

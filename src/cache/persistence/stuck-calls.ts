/**
 * File-system calls of the state store that timed out and have not returned since. Such a call holds one of Node's
 * file-system threads, and Node's exit waits for that thread: a process that has one cannot exit by itself, nor by
 * `process.exit` (the CLI then ends itself with a signal, after reporting: see cli/main.ts). Imports nothing, so the
 * CLI's entry can ask without loading the store.
 */
let stuck = 0;

/** Counts a call that timed out; the function returned is called once it returns after all. */
export function stuckCall(): () => void {
  stuck++;
  let returned = false;
  return () => {
    if (!returned) stuck--;
    returned = true;
  };
}

export function stuckFileSystemCalls(): number {
  return stuck;
}

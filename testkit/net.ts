/** Loopback ports for the helpers that start a real server process (redis-server, nginx). */
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createServer, Socket } from "node:net";

/** A port free on 127.0.0.1 now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  server.close();
  await once(server, "close");
  return port;
}

/** Whether something accepts connections on 127.0.0.1:`port`. */
export async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
    socket.connect(port, "127.0.0.1");
  });
}

/** Waits until `child` listens on `port` (10 s at most); throws when it exits first. */
export async function listening(child: ChildProcess, port: number, name: string, output = () => ""): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode} on port ${port}: ${output()}`);
    if (Date.now() > deadline) throw new Error(`${name} did not listen on port ${port} within 10 s: ${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

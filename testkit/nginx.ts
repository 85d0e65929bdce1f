/**
 * A real nginx (Debian's `/usr/sbin/nginx`) in front of a fleet: started in the foreground on a free loopback port
 * with a temp config (round-robin upstream over the given URLs, no buffering, so streams pass chunk by chunk, and a
 * client that leaves closes the upstream connection), its pid, logs and temp files in a temp directory; stopped when
 * the test ends. Where it is absent, `NGINX_SKIP` holds the reason.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { freePort, listening } from "./net.js";
import { tempDir } from "./tmp.js";

const BINARY = process.env.INFERNO_TEST_NGINX ?? "/usr/sbin/nginx";

/** Why the nginx tests cannot run here, or undefined when they can. */
export const NGINX_SKIP: string | undefined = existsSync(BINARY)
  ? undefined
  : `${BINARY} is not installed (Debian: apt-get install nginx-light)`;

export interface Nginx {
  url: string;
  /** nginx's error log so far. */
  errors(): Promise<string>;
}

/** The config: one upstream, round-robin over `upstreams` (`http://host:port`). */
export function nginxConfig(dir: string, port: number, upstreams: readonly string[]): string {
  const servers = upstreams.map((u) => `    server ${new URL(u).host};`).join("\n");
  return `daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "error.log")} warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${join(dir, "body")};
  proxy_temp_path ${join(dir, "proxy")};
  fastcgi_temp_path ${join(dir, "fastcgi")};
  uwsgi_temp_path ${join(dir, "uwsgi")};
  scgi_temp_path ${join(dir, "scgi")};
  upstream fleet {
${servers}
    keepalive 16;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://fleet;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 300s;
    }
  }
}
`;
}

/** Starts nginx over `upstreams`; it stops when the test ends. */
export async function startNginx(t: TestContext, upstreams: readonly string[]): Promise<Nginx> {
  const dir = await tempDir(t, "inferno-nginx-");
  const port = await freePort();
  const conf = join(dir, "nginx.conf");
  await writeFile(conf, nginxConfig(dir, port, upstreams));
  const child: ChildProcess = spawn(BINARY, ["-c", conf, "-p", dir, "-e", join(dir, "error.log")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exited = once(child, "exit");
  t.after(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGQUIT");
    await exited;
  });
  await listening(child, port, "nginx", () => stderr);
  return {
    url: `http://127.0.0.1:${port}`,
    errors: () => readFile(join(dir, "error.log"), "utf8").catch(() => ""),
  };
}

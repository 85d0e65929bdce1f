/** How a client on this machine reaches the address `inferno serve` binds to (`server.host`). */

/**
 * The host to dial for a bind address, without brackets: a wildcard bind (`0.0.0.0`, `::`) is reached on loopback,
 * any other address as it is. The one home of that rule, for the CLI's server URL and the server's own warm-up requests.
 */
export function dialHost(bindHost: string): string {
  const host = bindHost.replace(/^\[(.*)\]$/, "$1");
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::") return "::1";
  return host;
}

/** Whether a bind address is a wildcard (every interface), which another machine cannot dial. */
export function isWildcardHost(bindHost: string): boolean {
  const host = bindHost.replace(/^\[(.*)\]$/, "$1");
  return host === "0.0.0.0" || host === "" || host === "::";
}

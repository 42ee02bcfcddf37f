/**
 * The gateways' URLs from a discovery document (the `discoveryUrl` option): one URL (any
 * gateway's `GET /v1/regions`, or a static file with the same JSON) instead of a list built into
 * the client, so regions can be added or moved without shipping a new client.
 *
 * The document comes over the network, so it is read as hostile: at most `MAX_DOCUMENT_BYTES`
 * are read (a larger answer is refused, not truncated), at most `MAX_REGIONS` URLs, each
 * `ws://` or `wss://`; anything else is a `DiscoveryError` naming what is wrong. Same limits as
 * the Rust SDK's `discovery.rs` (`waas_protocol::regions`).
 */

import { DiscoveryError, TimeoutError } from "./errors.js";

/** Most regions a document may list: probing opens a connection to each. */
export const MAX_REGIONS = 32;
/** Largest document read. */
export const MAX_DOCUMENT_BYTES = 64 * 1024;
const MAX_URL_BYTES = 2048;

/** Fetches the document at `url` within `timeoutMs` and returns its URLs, in order. */
export async function discover(url: string, timeoutMs: number): Promise<string[]> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    let res: Response;
    try {
      res = await fetch(url, { signal: controller.signal, headers: { accept: "application/json" } });
    } catch (e) {
      if (controller.signal.aborted) throw new TimeoutError("discovery");
      throw new DiscoveryError(url, `cannot fetch: ${String(e)}`);
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => {});
      throw new DiscoveryError(url, `HTTP ${res.status}`);
    }
    const text = await readCapped(url, res, controller);
    try {
      return parseRegions(text);
    } catch (e) {
      throw new DiscoveryError(url, (e as Error).message);
    }
  } finally {
    clearTimeout(timer);
  }
}

/** The body as text, refusing more than `MAX_DOCUMENT_BYTES` (read chunk by chunk). */
async function readCapped(url: string, res: Response, controller: AbortController): Promise<string> {
  const length = Number(res.headers.get("content-length") ?? NaN);
  if (length > MAX_DOCUMENT_BYTES) {
    controller.abort();
    throw new DiscoveryError(url, `larger than ${MAX_DOCUMENT_BYTES} bytes`);
  }
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_DOCUMENT_BYTES) {
        await reader.cancel().catch(() => {});
        throw new DiscoveryError(url, `larger than ${MAX_DOCUMENT_BYTES} bytes`);
      }
      chunks.push(value);
    }
  } catch (e) {
    if (e instanceof DiscoveryError) throw e;
    if (controller.signal.aborted) throw new TimeoutError("discovery");
    throw new DiscoveryError(url, `cannot read: ${String(e)}`);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(all);
}

/**
 * The URLs of a regions document (`{"regions": [{"name", "url"}]}`), in its order; throws an
 * `Error` saying what is wrong otherwise.
 */
export function parseRegions(text: string): string[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`not a regions document: ${(e as Error).message}`);
  }
  const regions = (doc as { regions?: unknown } | null)?.regions;
  if (!Array.isArray(regions)) throw new Error(`not a regions document ({"regions": [{"name", "url"}]})`);
  if (regions.length === 0) throw new Error("lists no region");
  if (regions.length > MAX_REGIONS) throw new Error(`${regions.length} regions, at most ${MAX_REGIONS} allowed`);
  const names = new Set<string>();
  return regions.map((r: unknown) => {
    const { name, url } = (r ?? {}) as { name?: unknown; url?: unknown };
    if (typeof name !== "string" || !/^[A-Za-z0-9._-]{1,63}$/.test(name)) {
      throw new Error(`region name ${JSON.stringify(name)}: must be 1 to 63 letters, digits, '-', '_' or '.'`);
    }
    if (names.has(name)) throw new Error(`region name ${JSON.stringify(name)} listed twice`);
    names.add(name);
    if (typeof url !== "string") throw new Error(`region ${JSON.stringify(name)}: no URL`);
    const reason = urlProblem(url);
    if (reason) throw new Error(`region ${JSON.stringify(name)}: URL ${JSON.stringify(url.slice(0, 200))}: ${reason}`);
    return url;
  });
}

/** Same rule as `waas_protocol::regions::check_url`. */
function urlProblem(url: string): string | undefined {
  if (url.length > MAX_URL_BYTES) return "too long";
  if (/[\s\p{Cc}]/u.test(url)) return "contains whitespace or control characters";
  const rest = url.startsWith("ws://") ? url.slice(5) : url.startsWith("wss://") ? url.slice(6) : undefined;
  if (rest === undefined) return "must start with ws:// or wss://";
  const authority = rest.split(/[/?#]/)[0] ?? "";
  if (authority === "" || authority.includes("@")) return "must have a host and no user information";
  return undefined;
}

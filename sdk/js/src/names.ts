/**
 * Names checked locally before anything is sent, with the server's rules
 * (`docs/protocol.md#channel-names`, `docs/rpc.md#request`): a name that can never be valid is
 * refused at once with a typed error instead of costing a round trip.
 */

import { InvalidChannelError, InvalidPathError } from "./errors.js";

const MAX_CHANNEL_BYTES = 200;
const MAX_PATH_BYTES = 2048;
const MAX_METHOD_LEN = 16;
const MAX_SERVICE_LEN = 64;
const SEGMENT = /^[A-Za-z0-9_\-:@=+,;!~#/]+$/;
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/;
const QUERY_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*$/;
const encoder = new TextEncoder();

function byteLength(s: string): number {
  return encoder.encode(s).length;
}

/** Why `channel` is not a valid channel name, or `undefined` when it is. */
export function channelError(channel: string): string | undefined {
  if (channel.length === 0) return "is empty";
  if (byteLength(channel) > MAX_CHANNEL_BYTES) return `is longer than ${MAX_CHANNEL_BYTES} bytes`;
  for (const segment of channel.split(".")) {
    if (segment.length === 0) return "has an empty segment";
    if (!SEGMENT.test(segment)) {
      return segment === "*" || segment === ">"
        ? "wildcards belong to capability patterns"
        : "may only hold A-Z a-z 0-9 _ - : @ = + , ; ! ~ # / between dots";
    }
  }
  return undefined;
}

export function checkChannel(channel: string): void {
  const reason = channelError(channel);
  if (reason !== undefined) throw new InvalidChannelError(channel, reason);
}

/** A channel whose first segment is exactly `presence` has members (`docs/protocol.md#presence`). */
export function isPresenceChannel(channel: string): boolean {
  return channel.split(".")[0] === "presence" && channel.includes(".");
}

export function checkMethod(method: string): void {
  if (method.length === 0 || method.length > MAX_METHOD_LEN || !/^[A-Z]+$/.test(method)) {
    throw new InvalidPathError(method, `the method must be 1-${MAX_METHOD_LEN} upper-case letters`);
  }
}

export function checkPath(full: string): void {
  const fail = (reason: string) => {
    throw new InvalidPathError(full, `the path ${reason}`);
  };
  if (byteLength(full) > MAX_PATH_BYTES) fail(`is longer than ${MAX_PATH_BYTES} bytes`);
  const q = full.indexOf("?");
  const path = q < 0 ? full : full.slice(0, q);
  const query = q < 0 ? undefined : full.slice(q + 1);
  if (!path.startsWith("/")) fail("must start with '/'");
  if (!PATH_CHARS.test(path)) fail("may only hold URL characters (percent-encode the rest)");
  if (path.length > 1 && path.slice(1).split("/").some((s) => s.length === 0)) {
    fail("must not have empty segments ('//' or a trailing '/')");
  }
  const dots = (s: string) => {
    const d = s.toLowerCase().replaceAll("%2e", ".");
    return d === "." || d === "..";
  };
  if (path.split("/").some(dots)) fail("must not have '.' or '..' segments");
  if (query !== undefined && !QUERY_CHARS.test(query)) {
    fail("query may only hold URL characters (percent-encode the rest)");
  }
}

export function checkService(service: string): void {
  if (!new RegExp(`^[A-Za-z0-9_-]{1,${MAX_SERVICE_LEN}}$`).test(service)) {
    throw new InvalidPathError(
      service,
      `the service name must be 1-${MAX_SERVICE_LEN} characters of A-Z a-z 0-9 _ -`,
    );
  }
}

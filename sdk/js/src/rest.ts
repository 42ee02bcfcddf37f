/**
 * The REST API for tenants' servers (`docs/rest.md`): publish without holding a socket, mint
 * tokens for users, read history. Uses the platform's `fetch` (browsers, Node 18+). Never ship an
 * API key to a browser: this is for servers.
 */

import { ConfigError, HttpError, WebSocketError } from "./errors.js";
import { checkChannel } from "./names.js";
import { toMessage, type Frame } from "./session.js";
import type { HistoryPage, HistoryQuery } from "./types.js";

export interface TokenRequest {
  sub: string;
  caps?: { subscribe?: string[]; publish?: string[]; call?: string[]; share?: string[] };
  /** Lifetime, seconds (server default 3600). */
  ttl?: number;
  /** What other members of presence channels see. */
  info?: unknown;
}

export class ServerClient {
  private readonly base: string;

  /** `url`: the gateway's HTTP base (`http://127.0.0.1:8080`; `ws://` is accepted and mapped). */
  constructor(url: string, private readonly app: string, private readonly apiKey: string) {
    let u: URL;
    try {
      u = new URL(url.replace(/^ws(s?):/, "http$1:"));
    } catch {
      throw new ConfigError(`server URL ${JSON.stringify(url)} does not parse`);
    }
    this.base = `${u.origin}${u.pathname.replace(/\/+$/, "")}/v1/apps/${encodeURIComponent(app)}`;
  }

  private async fetch(method: string, path: string, body?: unknown): Promise<unknown> {
    let res: globalThis.Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: {
          authorization: `Bearer ${this.apiKey}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (e) {
      throw new WebSocketError(`HTTP transport: ${String(e)}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!res.ok) {
      const err = (json as { error?: { code?: string; message?: string } } | null)?.error;
      throw new HttpError(res.status, err?.code ?? "internal", err?.message ?? text.slice(0, 200));
    }
    return json;
  }

  /** Publishes to one channel; resolves with the offset it got. */
  async publish(channel: string, event: string, data: unknown): Promise<number> {
    checkChannel(channel);
    const r = (await this.fetch("POST", "/publish", { channel, event, data: data ?? null })) as {
      offsets: Record<string, number>;
    };
    return r.offsets[channel]!;
  }

  /** Publishes one message to several channels; resolves with each channel's offset. */
  async publishMany(channels: string[], event: string, data: unknown): Promise<Record<string, number>> {
    channels.forEach(checkChannel);
    const r = (await this.fetch("POST", "/publish", { channels, event, data: data ?? null })) as {
      offsets: Record<string, number>;
    };
    return r.offsets;
  }

  /** Has the server sign an HS256 token for a user (`POST /tokens`). */
  async mintToken(request: TokenRequest): Promise<{ token: string; expiresAt: number }> {
    const r = (await this.fetch("POST", "/tokens", request)) as { token: string; expires_at: number };
    return { token: r.token, expiresAt: r.expires_at };
  }

  /** A page of a channel's history (`GET .../history`). */
  async history(channel: string, query: HistoryQuery = {}): Promise<HistoryPage> {
    checkChannel(channel);
    const q = new URLSearchParams();
    if (query.since !== undefined) q.set("since", String(query.since));
    if (query.limit !== undefined) q.set("limit", String(query.limit));
    if (query.reverse !== undefined) q.set("reverse", String(query.reverse));
    const qs = q.size > 0 ? `?${q}` : "";
    const r = (await this.fetch("GET", `/channels/${encodeURIComponent(channel)}/history${qs}`)) as {
      channel: string;
      epoch: string;
      offset: number;
      messages: Frame[];
    };
    return { channel: r.channel, epoch: r.epoch, offset: r.offset, messages: r.messages.map(toMessage) };
  }
}

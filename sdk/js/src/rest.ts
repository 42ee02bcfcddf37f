/**
 * The REST API for tenants' servers (`docs/rest.md`): publish without holding a socket, mint
 * tokens for users, read history, start and stop recordings (`docs/recordings.md`). Uses the platform's `fetch` (browsers, Node 18+). Never ship an
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

/** What to record (`POST /recordings`, docs/recordings.md). */
export interface StartRecording {
  /** 1–200 bytes, for people. */
  name: string;
  /** 1–100 channel patterns (`*` one segment, `>` the rest). */
  channels: string[];
  /** Stop by itself after this many events. */
  maxEvents?: number;
  /** Stop by itself after this long, seconds. */
  maxDurationSecs?: number;
}

/** A recording as the server reports it. Times are milliseconds since the Unix epoch. */
export interface RecordingInfo {
  id: string;
  appId: string;
  name: string;
  channels: string[];
  status: "recording" | "stopped";
  maxEvents: number | null;
  maxDurationMs: number | null;
  eventCount: number;
  startedAt: number;
  stoppedAt: number | null;
  /** `stopped` (asked for), `max_events`, `max_duration`; null while recording. */
  stopReason: string | null;
}

interface RecordingWire {
  id: string;
  app_id: string;
  name: string;
  channels: string[];
  status: "recording" | "stopped";
  max_events: number | null;
  max_duration_ms: number | null;
  event_count: number;
  started_at: number;
  stopped_at: number | null;
  stop_reason: string | null;
}

function toRecording(r: RecordingWire): RecordingInfo {
  return {
    id: r.id,
    appId: r.app_id,
    name: r.name,
    channels: r.channels,
    status: r.status,
    maxEvents: r.max_events,
    maxDurationMs: r.max_duration_ms,
    eventCount: r.event_count,
    startedAt: r.started_at,
    stoppedAt: r.stopped_at,
    stopReason: r.stop_reason,
  };
}

export class ServerClient {
  private readonly base: string;

  /** `url`: the gateway's HTTP base (`http://127.0.0.1:8080`; `ws://` is accepted and mapped). */
  constructor(url: string, readonly app: string, private readonly apiKey: string) {
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

  /** Starts recording the app's channels matching `request.channels`. */
  async startRecording(request: StartRecording): Promise<RecordingInfo> {
    const body = {
      name: request.name,
      channels: request.channels,
      ...(request.maxEvents === undefined ? {} : { max_events: request.maxEvents }),
      ...(request.maxDurationSecs === undefined ? {} : { max_duration_secs: request.maxDurationSecs }),
    };
    return toRecording((await this.fetch("POST", "/recordings", body)) as RecordingWire);
  }

  /** A recording's state and event count. */
  async recording(id: string): Promise<RecordingInfo> {
    return toRecording((await this.fetch("GET", `/recordings/${encodeURIComponent(id)}`)) as RecordingWire);
  }

  /** Stops a recording; stopping a stopped one changes nothing. */
  async stopRecording(id: string): Promise<RecordingInfo> {
    return toRecording(
      (await this.fetch("POST", `/recordings/${encodeURIComponent(id)}/stop`)) as RecordingWire,
    );
  }
}

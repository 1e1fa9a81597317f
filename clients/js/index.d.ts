// Types of @wsedge/client (index.js). Hand-written; keep in step with index.js.

export declare const FINAL_CLOSE_CODES: readonly number[];
export declare const TOKEN_EXPIRED: 4003;
export declare const SERVICE_RESTART: 1012;

export declare const DEFAULTS: Readonly<{
  requestTimeout: number;
  backoffBase: number;
  backoffCap: number;
  hintJitter: number;
  pingInterval: number;
  pingTimeout: number;
}>;

/** Server codes from docs/protocol.md, plus the client's own. */
export type ErrorCode =
  | "bad_request" | "not_connected" | "dropped" | "unavailable" | "too_many_rooms"
  | "not_member" | "rate_limited" | "forbidden" | "bad_token"
  // client side:
  | "timeout" | "disconnected" | "offline" | "closed" | "replaced" | "kicked" | "token" | "connect"
  | (string & {});

export declare class WsedgeError extends Error {
  readonly name: "WsedgeError";
  readonly code: ErrorCode;
  /** The request id the error answers, when there is one. */
  readonly id?: string | number;
  /** Set on errors of a rejoin after a reconnect. */
  room?: string;
  constructor(code: ErrorCode, message?: string, id?: string | number);
}

export type TokenReason = "connect" | "reconnect" | "expired" | "refresh";
export type TokenSource = string | ((ctx: { reason: TokenReason }) => string | Promise<string>);

/** The part of the WHATWG WebSocket the client uses (browsers, the ws package). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // any: the client assigns these handlers, so DOM's and ws's own event
  // types must fit (it reads ev.data of a message, ev.code/ev.reason of a close).
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ClientOptions {
  /** e.g. "wss://chat.example.com/ws" */
  url: string;
  /** A JWT, or a callback asked before every connection attempt. */
  token?: TokenSource;
  /** Development mode identity (?user=); ignored when a token is given. */
  user?: string;
  /** Defaults to globalThis.WebSocket (absent in Node 20: pass the ws package's). */
  WebSocket?: WebSocketConstructor;
  /** Milliseconds before a request is rejected with code "timeout" (10000). */
  requestTimeout?: number;
  /** Full-jitter backoff: attempt n (the reconnecting event's attempt, from 1) waits uniform [0, min(backoffCap, backoffBase * 2^(n-1))) ms (500, 20000). */
  backoffBase?: number;
  backoffCap?: number;
  /** Extra random wait on top of a server's reconnect hint (1000 ms). */
  hintJitter?: number;
  /** App-level ping period (25000 ms; 0 turns the heartbeat off). */
  pingInterval?: number;
  /** Reconnect when nothing arrives this long after a ping (10000 ms; 0 turns the heartbeat off). */
  pingTimeout?: number;
  /** false: never reconnect. */
  reconnect?: boolean;
  /** Random source in [0, 1) for the jitter (tests). */
  random?: () => number;
}

export interface Ack { type: "ack"; id: string; [field: string]: unknown }
export interface JoinAck extends Ack {
  /** With room history: the room's position and whether the gap was replayed. */
  offset?: number;
  epoch?: string | number;
  recovered?: boolean;
}
export interface Pong { type: "pong"; id: string }

export interface IncomingMessage {
  type: "message";
  /** Absent for admin API pushes. */
  from?: string;
  /** Present for room messages. */
  room?: string;
  data: unknown;
  offset?: number;
  epoch?: string | number;
}

export interface ClientEvents {
  open: { reconnect: boolean };
  message: IncomingMessage;
  close: { code: number; reason: string; reconnect: boolean };
  reconnecting: { attempt: number; delay: number; code: number };
  rejoined: { room: string; ack: JoinAck };
  recovered: { room: string; ack: JoinAck };
  gap: { room: string; ack: JoinAck };
  error: WsedgeError | Error;
}

export interface RequestOptions { timeout?: number }

export declare function backoffDelay(attempt: number, base?: number, cap?: number, random?: () => number): number;

export interface ReconnectPlan { reconnect: boolean; delay: number; tokenReason: TokenReason | null }
export declare function reconnectPlan(input: {
  code: number;
  hintMs?: number;
  attempt: number;
  backoffBase?: number;
  backoffCap?: number;
  hintJitter?: number;
  random?: () => number;
}): ReconnectPlan;

export declare class WsedgeClient {
  constructor(options: ClientOptions);
  readonly state: "idle" | "connecting" | "open" | "closed";
  readonly rooms: string[];
  on<K extends keyof ClientEvents>(event: K, fn: (ev: ClientEvents[K]) => void): () => void;
  once<K extends keyof ClientEvents>(event: K, fn: (ev: ClientEvents[K]) => void): () => void;
  off<K extends keyof ClientEvents>(event: K, fn: (ev: ClientEvents[K]) => void): void;
  connect(): Promise<void>;
  close(code?: number, reason?: string): void;
  send(to: string, data: unknown, opts?: RequestOptions): Promise<Ack>;
  publish(room: string, data: unknown, opts?: RequestOptions): Promise<Ack>;
  join(room: string, opts?: RequestOptions): Promise<JoinAck>;
  leave(room: string, opts?: RequestOptions): Promise<Ack>;
  ping(opts?: RequestOptions): Promise<Pong>;
  refresh(token?: string, opts?: RequestOptions): Promise<Ack>;
}

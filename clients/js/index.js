// @wsedge/client: the reference client of the wsedge protocol
// (docs/protocol.md). One ES module, no dependencies; it runs in browsers
// and in Node (pass a WebSocket implementation where there is no global one).

/** Close codes after which the client never reconnects: another connection
 * of the same user took over (4000), or the backend kicked the user (4001). */
export const FINAL_CLOSE_CODES = Object.freeze([4000, 4001]);
/** The server's close for an expired token: fetch a fresh one, reconnect. */
export const TOKEN_EXPIRED = 4003;
/** Service restart; usually preceded by a {"type":"reconnect"} hint. */
export const SERVICE_RESTART = 1012;
// The client's own close code when the ping watchdog gives up (3000-4999 is
// the range an application may send; 4000-4099 belong to the server).
const WATCHDOG_CLOSE = 4100;
const OPEN = 1;

export const DEFAULTS = Object.freeze({
  requestTimeout: 10_000,
  backoffBase: 500,
  backoffCap: 20_000,
  hintJitter: 1_000,
  pingInterval: 25_000,
  pingTimeout: 10_000,
});

/** An error answer from the server (`code` is the protocol's code), or a
 * client-side failure: `timeout`, `disconnected`, `offline`, `closed`. */
export class WsedgeError extends Error {
  constructor(code, message, id) {
    super(message ? `${code}: ${message}` : code);
    this.name = "WsedgeError";
    this.code = code;
    if (id !== undefined) this.id = id;
  }
}

/** Full-jitter exponential backoff: uniform in [0, min(cap, base * 2^attempt)). */
export function backoffDelay(attempt, base = DEFAULTS.backoffBase, cap = DEFAULTS.backoffCap, random = Math.random) {
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 52));
  return random() * ceiling;
}

/**
 * What to do after the connection closed with `code`. Pure, so the policy is
 * testable without sockets.
 *   {reconnect:false} for 4000/4001;
 *   a server hint (after_ms) wins over the backoff: after_ms plus up to
 *   hintJitter, so that a restarted node is not hit by every client at once;
 *   4003 fetches a fresh token (tokenReason "expired") and retries at once
 *   the first time;
 *   anything else: the backoff.
 */
export function reconnectPlan({ code, hintMs, attempt, backoffBase = DEFAULTS.backoffBase,
  backoffCap = DEFAULTS.backoffCap, hintJitter = DEFAULTS.hintJitter, random = Math.random }) {
  if (FINAL_CLOSE_CODES.includes(code)) return { reconnect: false, delay: 0, tokenReason: null };
  if (typeof hintMs === "number" && hintMs >= 0) {
    return { reconnect: true, delay: hintMs + random() * hintJitter, tokenReason: "reconnect" };
  }
  if (code === TOKEN_EXPIRED) {
    return { reconnect: true, delay: attempt === 0 ? 0 : backoffDelay(attempt, backoffBase, backoffCap, random), tokenReason: "expired" };
  }
  return { reconnect: true, delay: backoffDelay(attempt, backoffBase, backoffCap, random), tokenReason: "reconnect" };
}

/**
 * A wsedge connection that reconnects by itself and rejoins its rooms.
 * Events (client.on(name, fn)):
 *   open        {reconnect}                   connected (and, after a reconnect, rooms rejoined)
 *   message     {from?, room?, data, offset?, epoch?}
 *   close       {code, reason, reconnect}     the socket closed; reconnect says whether a new one comes
 *   reconnecting {attempt, delay, code}
 *   rejoined    {room, ack}                    one room rejoined after a reconnect
 *   recovered   {room, ack}                    the server replayed what was missed (ack recovered:true)
 *   gap         {room, ack}                    messages were lost while away (ack recovered:false)
 *   error       WsedgeError                    a server error not tied to a request, a failed rejoin
 */
export class WsedgeClient {
  constructor(options = {}) {
    if (!options.url) throw new TypeError("wsedge: url is required");
    this._opts = { ...DEFAULTS, ...options };
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this._WebSocket !== "function") {
      throw new TypeError("wsedge: no global WebSocket; pass one as options.WebSocket (e.g. the ws package)");
    }
    this._random = options.random ?? Math.random;
    this._token = typeof options.token === "string" ? options.token : undefined;
    this._tokenFn = typeof options.token === "function" ? options.token : undefined;
    this._listeners = new Map();
    this._pending = new Map(); // request id -> {resolve, reject, timer}
    this._rooms = new Map(); // room -> {offset, epoch} (either may be undefined)
    this._nextId = 1;
    this._ws = null;
    this._state = "idle"; // idle | connecting | open | closed
    this._stopped = false;
    this._attempt = 0;
    this._everOpened = false;
    this._reconnectTimer = null;
    this._pingTimer = null;
    this._watchdogTimer = null;
    this._hintMs = undefined;
    this._connectWaiters = [];
  }

  /** idle, connecting, open or closed (closed for good: close(), 4000, 4001). */
  get state() { return this._state; }
  /** The rooms the client is in (and rejoins after a reconnect). */
  get rooms() { return [...this._rooms.keys()]; }

  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) { this._listeners.get(event)?.delete(fn); }

  once(event, fn) {
    const off = this.on(event, (ev) => { off(); fn(ev); });
    return off;
  }

  _emit(event, payload) {
    for (const fn of [...(this._listeners.get(event) ?? [])]) {
      try { fn(payload); } catch (err) { queueMicrotask(() => { throw err; }); }
    }
  }

  /** Opens the connection; resolves on the first open, rejects if the client
   * is closed for good before that. It keeps retrying with the backoff. */
  connect() {
    if (this._state === "open") return Promise.resolve();
    if (this._state === "closed") return Promise.reject(new WsedgeError("closed", "client is closed"));
    const p = new Promise((resolve, reject) => this._connectWaiters.push({ resolve, reject }));
    if (this._state === "idle") this._open("connect");
    return p;
  }

  /** Closes for good: no reconnect; pending requests are rejected (closed). */
  close(code = 1000, reason = "") {
    this._stopped = true;
    clearTimeout(this._reconnectTimer);
    const ws = this._ws;
    this._finish({ code, reason }, "closed");
    if (ws) { try { ws.close(code, reason); } catch { /* already closing */ } }
  }

  send(to, data, opts) { return this._request({ type: "send", to, data }, opts); }

  publish(room, data, opts) { return this._request({ type: "publish", room, data }, opts); }

  /** Joins room; the client rejoins it after every reconnect until leave(). */
  async join(room, opts) {
    const known = this._rooms.get(room);
    this._rooms.set(room, known ?? {});
    try {
      const ack = await this._request(joinMessage(room, known), opts);
      this._noteJoinAck(room, ack);
      return ack;
    } catch (err) {
      // A refusal means we are not in the room; a timeout or a lost
      // connection leaves it to the rejoin.
      if (!known && !isTransient(err)) this._rooms.delete(room);
      throw err;
    }
  }

  leave(room, opts) {
    this._rooms.delete(room);
    return this._request({ type: "leave", room }, opts);
  }

  ping(opts) { return this._request({ type: "ping" }, opts); }

  /** Hands the server a fresh token for this connection (ack, or bad_token).
   * Without an argument the token callback is asked for one. */
  async refresh(token, opts) {
    if (token === undefined) {
      if (!this._tokenFn) throw new TypeError("wsedge: refresh() needs a token or a token callback");
      token = await this._tokenFn({ reason: "refresh" });
    }
    const ack = await this._request({ type: "refresh", token }, opts);
    if (!this._tokenFn) this._token = token;
    return ack;
  }

  _request(msg, opts = {}) {
    if (this._state !== "open" || !this._ws || this._ws.readyState !== OPEN) {
      return Promise.reject(new WsedgeError("offline", "not connected"));
    }
    const id = "c" + this._nextId++;
    const timeout = opts.timeout ?? this._opts.requestTimeout;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new WsedgeError("timeout", `no answer within ${timeout} ms`, id));
      }, timeout);
      this._pending.set(id, { resolve, reject, timer });
      this._ws.send(JSON.stringify({ ...msg, id }));
    });
  }

  async _open(tokenReason) {
    this._state = "connecting";
    let url;
    try {
      url = new URL(this._opts.url, globalThis.location?.href);
      // A page may say "/ws": resolved against an http(s) page, it needs ws(s).
      if (url.protocol === "http:" || url.protocol === "https:") url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      if (this._tokenFn) this._token = await this._tokenFn({ reason: tokenReason });
      if (this._stopped) return;
      if (this._token !== undefined) url.searchParams.set("token", this._token);
      else if (this._opts.user !== undefined) url.searchParams.set("user", this._opts.user);
    } catch (err) {
      // A failing token callback is retried like a failed connection.
      this._emit("error", err instanceof WsedgeError ? err : Object.assign(new WsedgeError("token", String(err?.message ?? err)), { cause: err }));
      this._afterClose({ code: 1006, reason: "token callback failed" });
      return;
    }
    let ws;
    try {
      ws = new this._WebSocket(url.toString());
    } catch (err) {
      this._emit("error", Object.assign(new WsedgeError("connect", String(err?.message ?? err)), { cause: err }));
      this._afterClose({ code: 1006, reason: "constructor failed" });
      return;
    }
    this._ws = ws;
    this._hintMs = undefined;
    ws.onopen = () => this._onOpen(ws);
    ws.onmessage = (ev) => this._onMessage(ws, ev);
    // A refused upgrade (401, 503, ...) shows as an error then a close 1006;
    // browsers hide the status, so the close alone drives the retry.
    ws.onerror = () => {};
    ws.onclose = (ev) => { if (this._ws === ws) this._afterClose({ code: ev.code, reason: ev.reason }); };
  }

  async _onOpen(ws) {
    if (this._ws !== ws) return;
    this._state = "open";
    this._attempt = 0;
    const reconnect = this._everOpened;
    this._everOpened = true;
    this._startPing(ws);
    if (reconnect) await this._rejoin(ws);
    if (this._ws !== ws || this._state !== "open") return;
    this._emit("open", { reconnect });
    for (const w of this._connectWaiters.splice(0)) w.resolve();
  }

  // Rejoins one room after another (each join counts against -client-rate;
  // a rate_limited join is retried after a second, at most twice).
  async _rejoin(ws) {
    for (const [room, pos] of [...this._rooms]) {
      if (this._ws !== ws) return;
      try {
        const ack = await this._rejoinOne(ws, room, pos);
        this._noteJoinAck(room, ack);
        this._emit("rejoined", { room, ack });
        if (ack.recovered === true) this._emit("recovered", { room, ack });
        else if (ack.recovered === false) this._emit("gap", { room, ack });
      } catch (err) {
        if (isTransient(err)) return; // the connection went; the next open retries
        this._rooms.delete(room);
        err.room = room;
        this._emit("error", err);
      }
    }
  }

  async _rejoinOne(ws, room, pos) {
    for (let tries = 1; ; tries++) {
      try {
        return await this._request(joinMessage(room, pos));
      } catch (err) {
        if (err.code !== "rate_limited" || tries >= 3 || this._ws !== ws) throw err;
        await new Promise((r) => setTimeout(r, 1000));
        if (this._ws !== ws) throw new WsedgeError("disconnected", "connection closed");
      }
    }
  }

  _noteJoinAck(room, ack) {
    const pos = this._rooms.get(room);
    if (!pos) return;
    if (ack.offset !== undefined) pos.offset = ack.offset;
    if (ack.epoch !== undefined) pos.epoch = ack.epoch;
  }

  _onMessage(ws, ev) {
    if (this._ws !== ws) return;
    clearTimeout(this._watchdogTimer); // any message proves the link is alive
    let msg;
    try { msg = JSON.parse(typeof ev.data === "string" ? ev.data : String(ev.data)); } catch { return; }
    if (msg === null || typeof msg !== "object") return;
    switch (msg.type) {
      case "message": {
        const pos = msg.room !== undefined ? this._rooms.get(msg.room) : undefined;
        if (pos && msg.offset !== undefined) {
          pos.offset = msg.offset;
          if (msg.epoch !== undefined) pos.epoch = msg.epoch;
        }
        this._emit("message", msg);
        return;
      }
      case "ack":
      case "pong":
        this._settle(msg.id, (p) => p.resolve(msg));
        return;
      case "error": {
        const err = new WsedgeError(msg.code, msg.message, msg.id);
        if (msg.id === undefined || !this._pending.has(String(msg.id))) this._emit("error", err);
        else this._settle(msg.id, (p) => p.reject(err));
        return;
      }
      case "reconnect":
        if (typeof msg.after_ms === "number") this._hintMs = msg.after_ms;
        return;
    }
  }

  _settle(id, fn) {
    if (id === undefined) return;
    const p = this._pending.get(String(id));
    if (!p) return;
    this._pending.delete(String(id));
    clearTimeout(p.timer);
    fn(p);
  }

  // App-level heartbeat: a ping every pingInterval; if nothing at all comes
  // back within pingTimeout the link is dead (a NAT or proxy dropped it) and
  // the client closes it and reconnects.
  _startPing(ws) {
    clearInterval(this._pingTimer);
    if (!(this._opts.pingInterval > 0) || !(this._opts.pingTimeout > 0)) return;
    this._pingTimer = setInterval(() => {
      if (this._ws !== ws || ws.readyState !== OPEN) return;
      ws.send(JSON.stringify({ type: "ping", id: "p" + this._nextId++ }));
      clearTimeout(this._watchdogTimer);
      this._watchdogTimer = setTimeout(() => this._drop(ws, WATCHDOG_CLOSE, "ping timeout"), this._opts.pingTimeout);
    }, this._opts.pingInterval);
  }

  // Abandons ws without waiting for its close handshake, which a dead link
  // would never finish.
  _drop(ws, code, reason) {
    if (this._ws !== ws) return;
    this._detach(ws);
    if (typeof ws.terminate === "function") ws.terminate();
    else { try { ws.close(code, reason); } catch { /* closing anyway */ } }
    this._afterClose({ code, reason });
  }

  _detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = () => {};
    if (this._ws === ws) this._ws = null;
  }

  _stopTimers() {
    clearInterval(this._pingTimer);
    clearTimeout(this._watchdogTimer);
  }

  _rejectPending(code, message) {
    for (const [id, p] of this._pending) {
      clearTimeout(p.timer);
      p.reject(new WsedgeError(code, message, id));
    }
    this._pending.clear();
  }

  // Terminal state: no socket, no timers, nothing pending.
  _finish(ev, code) {
    if (this._ws) this._detach(this._ws);
    this._stopTimers();
    const wasClosed = this._state === "closed";
    this._state = "closed";
    this._rejectPending(code, "connection closed");
    if (wasClosed) return;
    for (const w of this._connectWaiters.splice(0)) w.reject(new WsedgeError(code, `closed with ${ev.code}`));
    this._emit("close", { code: ev.code, reason: ev.reason ?? "", reconnect: false });
  }

  _afterClose(ev) {
    if (this._ws) this._detach(this._ws);
    this._stopTimers();
    if (this._stopped || this._state === "closed") return;
    const plan = reconnectPlan({
      code: ev.code, hintMs: this._hintMs, attempt: this._attempt, random: this._random,
      backoffBase: this._opts.backoffBase, backoffCap: this._opts.backoffCap, hintJitter: this._opts.hintJitter,
    });
    this._hintMs = undefined;
    if (this._opts.reconnect === false || !plan.reconnect) {
      this._finish(ev, ev.code === 4000 ? "replaced" : ev.code === 4001 ? "kicked" : "closed");
      return;
    }
    this._state = "connecting";
    this._rejectPending("disconnected", "connection closed");
    this._emit("close", { code: ev.code, reason: ev.reason ?? "", reconnect: true });
    const attempt = ++this._attempt;
    this._emit("reconnecting", { attempt, delay: plan.delay, code: ev.code });
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = setTimeout(() => {
      if (!this._stopped) this._open(plan.tokenReason);
    }, plan.delay);
  }
}

function joinMessage(room, pos) {
  const msg = { type: "join", room };
  if (pos && pos.offset !== undefined && pos.epoch !== undefined) msg.since = { offset: pos.offset, epoch: pos.epoch };
  return msg;
}

function isTransient(err) {
  return err instanceof WsedgeError && (err.code === "timeout" || err.code === "disconnected" || err.code === "offline");
}

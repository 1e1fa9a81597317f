// Broadcast fan-out through the ws package on one Node event loop: an
// independent single-loop client. N clients on URL?user=n<i> (at most 64
// handshakes at once; a 503 is retried after 100 ms); once all are open,
// K POSTs to ADMIN/v1/broadcast, 500 ms apart, each body {"ts":<ns since
// the epoch>,"seq":k} (the form wsbench posts); every client records the
// POST-to-receipt latency of each {"type":"message","data":{...}} it gets.
// Waits at most 10 s after the last POST's turn for every delivery.
//
//   node fanout.mjs ws://127.0.0.1:8080/ws http://127.0.0.1:9090 [N=10000] [K=20]
//
// Prints deliveries, p50/p99 and the client's CPU from the first POST to
// the end; with PERSEQ=1 also each message's first and last delivery (ms).
import { openAll } from './open.mjs';

const [url, admin, n = '10000', k = '20'] = process.argv.slice(2);
if (!url || !admin) {
  console.error('usage: node fanout.mjs WS_URL ADMIN_URL [N] [K]');
  process.exit(2);
}
const N = +n, K = +k;
const nowMs = () => performance.timeOrigin + performance.now();
const lat = new Float64Array(N * K);
const first = new Float64Array(K).fill(Infinity), last = new Float64Array(K);
let nlat = 0;

const socks = openAll(N, (i) => `${url}?user=n${i}`, (ws) => {
  ws.on('message', (b) => {
    const t = nowMs();
    let m;
    try {
      m = JSON.parse(b);
    } catch {
      return;
    }
    if (m.type !== 'message' || !m.data || typeof m.data.ts !== 'number') return;
    const d = t - m.data.ts / 1e6, q = m.data.seq;
    if (nlat < lat.length) lat[nlat++] = d;
    if (q >= 0 && q < K) {
      if (d < first[q]) first[q] = d;
      if (d > last[q]) last[q] = d;
    }
  });
}, () => setTimeout(post, 1000));

let seq = 0, c0;
async function post() {
  if (seq === 0) c0 = process.cpuUsage();
  if (seq < K) {
    const ts = Math.round(nowMs() * 1e6), s = seq++;
    setTimeout(post, 500);
    try {
      const r = await fetch(`${admin}/v1/broadcast`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"ts":${ts},"seq":${s}}`,
      });
      if (!r.ok) console.error('POST', s, r.status);
    } catch (e) {
      console.error('POST', s, e.message);
    }
    return;
  }
  const deadline = Date.now() + 10000;
  const done = () => {
    if (nlat < N * K && Date.now() < deadline) return setTimeout(done, 50);
    const c = process.cpuUsage(c0);
    const a = lat.subarray(0, nlat).sort();
    const q = (p) => (a.length ? a[Math.min(a.length - 1, Math.floor(p * a.length))].toFixed(1) : 'NaN');
    console.log(`node-ws fanout: ${nlat} of ${N * K} deliveries p50 ${q(0.5)}ms p99 ${q(0.99)}ms client_cpu ${((c.user + c.system) / 1e6).toFixed(1)}s`);
    if (process.env.PERSEQ) console.log('per message first/last ms: ' + Array.from(last, (x, i) => `${first[i].toFixed(0)}/${x.toFixed(0)}`).join(' '));
    for (const s of socks) s.terminate();
    process.exit(0);
  };
  done();
}

// Closed-loop echo through the ws package on one Node event loop (libuv
// epoll): an independent single-loop client for wsedge's /echo and the
// peers'. N connections (at most 64 handshakes at once; a 503, wsedge's
// answer over its accept bounds, is retried after 100 ms), one SIZE-byte
// binary message in flight on each; after all are open and 500 ms of
// warm-up, DUR seconds are measured.
//
//   node echo.mjs ws://127.0.0.1:8080/echo [N=1000] [SIZE=64] [DUR=6]
//
// Prints msgs/s, round trip p50/p99 and the client's CPU (of one CPU) over
// the measured seconds.
import { openAll } from './open.mjs';

const [url, n = '1000', size = '64', dur = '6'] = process.argv.slice(2);
if (!url) {
  console.error('usage: node echo.mjs URL [N] [SIZE] [DUR]');
  process.exit(2);
}
const N = +n, SIZE = +size, DUR = +dur * 1000;
const payload = Buffer.alloc(SIZE, 0x61);
const sent = new Float64Array(N);
const lat = new Float64Array(8_000_000);
let nlat = 0, got = 0, measuring = false, stop = false;
const now = () => performance.now();

function send(i) {
  sent[i] = now();
  socks[i].send(payload, { binary: true });
}

const socks = openAll(N, () => url, (ws, i) => {
  ws.on('message', () => {
    if (measuring) {
      got++;
      if (nlat < lat.length) lat[nlat++] = now() - sent[i];
    }
    if (!stop) send(i);
  });
}, start);

function start() {
  for (let i = 0; i < N; i++) send(i);
  let c0, t0;
  setTimeout(() => {
    c0 = process.cpuUsage();
    t0 = now();
    nlat = got = 0;
    measuring = true;
  }, 500);
  setTimeout(() => {
    stop = true;
    measuring = false;
    const secs = (now() - t0) / 1000, c = process.cpuUsage(c0);
    const a = lat.subarray(0, nlat).sort();
    const q = (p) => (a.length ? a[Math.min(a.length - 1, Math.floor(p * a.length))].toFixed(2) : 'NaN');
    const cpu = ((c.user + c.system) / 1e6 / secs) * 100;
    console.log(`node-ws echo: ${Math.round(got / secs)} msgs/s p50 ${q(0.5)}ms p99 ${q(0.99)}ms client_cpu ${cpu.toFixed(0)}% of one CPU`);
    for (const s of socks) s.terminate();
    process.exit(0);
  }, 500 + DUR);
}

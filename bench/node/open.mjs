// openAll opens n WebSocket connections with the ws package, at most 64
// handshakes at once. A 503 (wsedge's answer over its accept bounds) is
// retried after 100 ms; any other failure ends the process. on(ws, i)
// attaches the caller's handlers to connection i (again on a retry);
// allOpen runs once every connection is open. Returns the sockets.
import WebSocket from 'ws';

export function openAll(n, urlOf, on, allOpen) {
  const socks = new Array(n);
  let next = 0, opened = 0;
  function connect(i = next < n ? next++ : -1) {
    if (i < 0) return;
    const ws = new WebSocket(urlOf(i), { perMessageDeflate: false });
    socks[i] = ws;
    on(ws, i);
    ws.on('open', () => {
      connect();
      if (++opened === n) allOpen();
    });
    ws.on('unexpected-response', (req, res) => {
      if (res.statusCode !== 503) {
        console.error('connection', i, 'answered', res.statusCode);
        process.exit(1);
      }
      req.destroy();
      setTimeout(() => connect(i), 100);
    });
    ws.on('error', (e) => {
      console.error('connection', i, e.message);
      process.exit(1);
    });
  }
  for (let k = 0; k < 64; k++) connect();
  return socks;
}

// Test helpers: bounded polling instead of fixed sleeps.

/** Resolves once cond() is true; rejects after timeoutMs. */
export async function waitFor(cond, timeoutMs = 5000, what = String(cond)) {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The next `event` of client, or a rejection after timeoutMs. */
export function nextEvent(client, event, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error(`no ${event} event within ${timeoutMs} ms`)); }, timeoutMs);
    const off = client.once(event, (ev) => { clearTimeout(timer); resolve(ev); });
  });
}

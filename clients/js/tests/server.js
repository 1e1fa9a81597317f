// A real wsedge for the integration tests: built once per test file from
// this repository, run on free loopback ports, always killed at the end.
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { waitFor } from "./helpers.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** Builds cmd/wsedge into a temporary folder; returns its path and a cleanup. */
export async function buildWsedge() {
  const dir = mkdtempSync(join(tmpdir(), "wsedge-js-"));
  const bin = join(dir, "wsedge");
  await promisify(execFile)("go", ["build", "-o", bin, "./cmd/wsedge"], { cwd: repoRoot, timeout: 300_000 });
  return { bin, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A loopback port that was free a moment ago (wsedge logs its address only
 * at info level, so the test picks the port instead of using :0). */
export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => res(port)); });
  });
}

const running = new Set();
process.on("exit", () => { for (const p of running) p.kill("SIGKILL"); });

/**
 * Starts wsedge in development mode and waits for /readyz. Pass the ports of
 * an earlier instance to restart on the same addresses.
 */
export async function startWsedge(bin, { port, adminPort, args = [] } = {}) {
  port ??= await freePort();
  adminPort ??= await freePort();
  const proc = spawn(bin, ["-addr", `127.0.0.1:${port}`, "-admin", `127.0.0.1:${adminPort}`, "-log-level", "warn", ...args],
    { stdio: ["ignore", "ignore", "pipe"] });
  running.add(proc);
  let stderr = "";
  proc.stderr.on("data", (b) => { stderr += b; });
  const exited = new Promise((r) => proc.on("exit", (code, signal) => { running.delete(proc); r({ code, signal }); }));
  let exitedEarly = false;
  exited.then(() => { exitedEarly = true; });
  const admin = `http://127.0.0.1:${adminPort}`;
  let ready = false;
  await waitFor(() => {
    if (exitedEarly) throw new Error(`wsedge exited at start: ${stderr}`);
    if (!ready) fetch(admin + "/readyz").then((r) => { ready = r.ok; }, () => {});
    return ready;
  }, 15_000, "wsedge /readyz");
  return {
    port, adminPort, admin,
    url: `ws://127.0.0.1:${port}/ws`,
    stderr: () => stderr,
    /** SIGKILL (a crash) and wait for the exit. */
    async kill() { if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL"); await exited; },
    /** SIGTERM (a drain), SIGKILL after 5 s. */
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

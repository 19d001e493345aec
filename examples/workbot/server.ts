/**
 * WorkBot custom server: Next.js behind a plain `http` server, plus a `ws`
 * WebSocket endpoint on /ws.
 *
 *   dev:        tsx watch server.ts           (NODE_ENV unset -> Next dev mode)
 *   production: NODE_ENV=production node dist/server.js
 *
 * dist/server.js is CommonJS so PM2 (cluster mode) can require() it.
 */
import http from "node:http";
import path from "node:path";
import type { Duplex } from "node:stream";
import next from "next";
import { WebSocketServer, type WebSocket } from "ws";

const dev = process.env.NODE_ENV !== "production";
const hostname = process.env.HOSTNAME || "127.0.0.1";
const port = intFromEnv("PORT", 5000);
const maxWsConnections = intFromEnv("WS_MAX_CONNECTIONS", 100);
const shutdownTimeoutMs = intFromEnv("SHUTDOWN_TIMEOUT_MS", 8000);
const WS_PATH = "/ws";

// The Next project directory is resolved from this script's location, never
// from process.cwd(): compiled, this file is <app>/dist/server.js; under
// `tsx watch server.ts` it is <app>/server.ts.
const appDir =
  path.basename(__dirname) === "dist" ? path.resolve(__dirname, "..") : __dirname;

function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    console.error(`> workbot: invalid ${name}=${JSON.stringify(raw)}`);
    process.exit(1);
  }
  return value;
}

function rejectUpgrade(socket: Duplex, status: number, reason: string): void {
  const body = `${reason}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\n` +
      "Connection: close\r\n" +
      "Content-Type: text/plain\r\n" +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      (status === 503 ? "Retry-After: 5\r\n" : "") +
      "\r\n" +
      body,
    () => socket.destroy(),
  );
}

let shuttingDown = false;

const server = http.createServer((req, res) => {
  if (shuttingDown) res.setHeader("Connection", "close");
  handle(req, res).catch((err: unknown) => {
    console.error("> workbot: request error", req.method, req.url, err);
    if (!res.headersSent) {
      res.statusCode = 500;
      res.setHeader("Content-Type", "text/plain");
      res.end("Internal Server Error\n");
    } else {
      res.destroy();
    }
  });
});

const app = next({ dev, hostname, port, dir: appDir, httpServer: server });
const handle = app.getRequestHandler();
// Set after prepare(). In Next 15.5 this resolves to
// NextNodeServer.handleUpgrade, which does nothing: dev HMR
// (/_next/webpack-hmr) is served by an 'upgrade' listener that Next attaches
// to this http server itself on the first request it handles.
let nextUpgrade:
  | ((req: http.IncomingMessage, socket: Duplex, head: Buffer) => Promise<void>)
  | undefined;

// ---- WebSocket echo on /ws -------------------------------------------------
const wss = new WebSocketServer({ noServer: true });
let pendingHandshakes = 0;

wss.on("connection", (ws: WebSocket) => {
  ws.on("error", (err) => console.error("> workbot: ws error", err.message));
  ws.on("message", (data, isBinary) => {
    ws.send(data, { binary: isBinary });
  });
});

server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
  socket.on("error", () => socket.destroy());
  let pathname: string;
  try {
    pathname = new URL(req.url ?? "/", "http://localhost").pathname;
  } catch {
    socket.destroy();
    return;
  }

  if (pathname === WS_PATH) {
    if (shuttingDown) return rejectUpgrade(socket, 503, "Service Unavailable");
    if (wss.clients.size + pendingHandshakes >= maxWsConnections) {
      return rejectUpgrade(socket, 503, "Service Unavailable");
    }
    pendingHandshakes++;
    let counted = true;
    const release = () => {
      if (counted) {
        counted = false;
        pendingHandshakes--;
      }
    };
    socket.once("close", release);
    wss.handleUpgrade(req, socket, head, (ws) => {
      release();
      wss.emit("connection", ws, req);
    });
    return;
  }

  if (dev && pathname.startsWith("/_next/")) {
    // Leave HMR to Next (see the note on nextUpgrade above).
    void nextUpgrade?.(req, socket, head).catch(() => socket.destroy());
    return;
  }

  socket.destroy();
});

// ---- graceful shutdown ----------------------------------------------------
function shutdown(signal: NodeJS.Signals): void {
  if (shuttingDown) {
    console.log(`> workbot: ${signal} again, exiting now`);
    process.exit(1);
  }
  shuttingDown = true;
  console.log(`> workbot: ${signal} received, shutting down`);

  const force = setTimeout(() => {
    console.error(`> workbot: still busy after ${shutdownTimeoutMs} ms, forcing exit`);
    process.exit(1);
  }, shutdownTimeoutMs);
  force.unref();

  let pending = 2;
  const done = () => {
    if (--pending > 0) return;
    clearInterval(idleSweep);
    app
      .close()
      .catch(() => undefined)
      .finally(() => {
        console.log("> workbot: shutdown complete");
        process.exit(0);
      });
  };

  // Stop accepting; in-flight requests finish, idle keep-alive sockets close.
  server.close(done);
  server.closeIdleConnections();
  const idleSweep = setInterval(() => server.closeIdleConnections(), 200);
  idleSweep.unref();

  // Close WebSocket clients with 1001 (going away); terminate stragglers.
  wss.close(done);
  for (const client of wss.clients) client.close(1001, "server shutting down");
  const kill = setTimeout(
    () => {
      for (const client of wss.clients) client.terminate();
    },
    Math.min(2000, Math.floor(shutdownTimeoutMs / 2)),
  );
  kill.unref();
}

process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);

// ---- start -----------------------------------------------------------------
server.on("error", (err) => {
  console.error("> workbot: server error", err);
  process.exit(1);
});

app
  .prepare()
  .then(() => {
    if (typeof app.getUpgradeHandler === "function") nextUpgrade = app.getUpgradeHandler();
    server.listen(port, hostname, () => {
      console.log(
        `> workbot ready on http://${hostname}:${port} (pid ${process.pid}, ${dev ? "dev" : "production"})`,
      );
      if (typeof process.send === "function") process.send("ready");
    });
  })
  .catch((err: unknown) => {
    console.error("> workbot: failed to start", err);
    process.exit(1);
  });

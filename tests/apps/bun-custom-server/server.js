// A custom server in front of Next.js, as the incident's app has one (this file and the
// start script are the kit's; the rest is create-next-app's, tests/apps/README.md).
const { createServer } = require("node:http");
const next = require("next");

const port = parseInt(process.env.PORT || "3000", 10);
const hostname = process.env.HOSTNAME || "127.0.0.1";
const app = next({ dev: process.env.NODE_ENV !== "production", hostname, port });
const handle = app.getRequestHandler();

app.prepare().then(() => {
  createServer((req, res) => {
    if (req.url === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ ok: true, pid: process.pid }));
      return;
    }
    handle(req, res);
  }).listen(port, hostname, () => {
    console.log(`> ready on http://${hostname}:${port}`);
  });
});

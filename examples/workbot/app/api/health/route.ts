export const dynamic = "force-dynamic";

export function GET() {
  return Response.json(
    {
      status: "ok",
      app: "workbot",
      uptime: Math.round(process.uptime()),
      pid: process.pid,
    },
    { headers: { "cache-control": "no-store" } },
  );
}

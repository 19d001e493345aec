import { pool } from "../../../lib/db";

export const dynamic = "force-dynamic";

// One query through the pool. The database away (or the pool exhausted past its 2 s
// connection timeout): 503, and the next request tries again, so the route recovers by
// itself when the database is back.
export async function GET() {
  const headers = { "cache-control": "no-store" };
  const db = pool();
  if (!db) {
    return Response.json({ status: "no database", app: "workbot" }, { status: 503, headers });
  }
  try {
    const result = await db.query("SELECT now() AS now");
    return Response.json(
      { status: "ok", now: result.rows[0].now, pid: process.pid, poolMax: db.options.max },
      { headers },
    );
  } catch (err) {
    return Response.json(
      { status: "database unavailable", error: (err as Error).message, pid: process.pid },
      { status: 503, headers: { ...headers, "retry-after": "5" } },
    );
  }
}

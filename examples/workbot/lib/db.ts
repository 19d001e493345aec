/**
 * The app's PostgreSQL pool: one per process, sized by DB_POOL_MAX, which hardenkit
 * computes from app_db_connection_budget so that every worker, the one more process of a
 * graceful reload and the pre-traffic gate together stay within the budget. Without it
 * the pool takes node-postgres's default, 10 per process (the incident's app had 20).
 */
import { Pool } from "pg";

const DEFAULT_POOL_MAX = 10;

// Next.js may load this module more than once per process (one copy per route bundle):
// the pool lives on globalThis, so each process opens one.
const holder = globalThis as typeof globalThis & { workbotPool?: Pool | null };

function poolMax(): number {
  const raw = process.env.DB_POOL_MAX;
  const value = raw === undefined || raw.trim() === "" ? DEFAULT_POOL_MAX : Number(raw);
  return Number.isInteger(value) && value > 0 ? value : DEFAULT_POOL_MAX;
}

export function pool(): Pool | null {
  if (holder.workbotPool !== undefined) return holder.workbotPool;
  const url = process.env.DATABASE_URL;
  if (!url) {
    holder.workbotPool = null;
    return null;
  }
  const created = new Pool({
    connectionString: url,
    max: poolMax(),
    // A database that is away fails a request in 2 s instead of holding it.
    connectionTimeoutMillis: 2000,
    idleTimeoutMillis: 10000,
  });
  // An idle client's connection dropped (the database restarted): the pool replaces it
  // on the next query; without a listener the process would crash.
  created.on("error", (err) => console.error("> workbot: idle database client:", err.message));
  holder.workbotPool = created;
  return created;
}

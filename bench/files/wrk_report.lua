-- wrk script for bench/serve_bench.py: prints one machine-readable line (HK_RESULT) with
-- the figures the bench reports; latencies in microseconds, as wrk keeps them.
--
-- Without arguments, errors are wrk's own: socket errors, timeouts and answers >= 400.
-- With `-- count` it also counts every non-2xx answer (3xx and 1xx too) in response().
-- That hook costs: wrk then copies every header and body into Lua, which capped the
-- 220 kB static asset through Nginx at ~3,000 requests/s where wrk alone reaches 10,000+.
-- So the timed runs go without it and the bench adds a short `-- count` audit run.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
  counting = args[1] == "count"
  if not counting then
    -- wrk parses headers and bodies for Lua only when a global response() exists.
    response = nil
  end
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local non2xx_total = 0
  local counted = false
  for _, thread in ipairs(threads) do
    non2xx_total = non2xx_total + thread:get("non2xx")
    counted = counted or thread:get("counting")
  end
  if not counted then
    non2xx_total = e.status
  end
  io.write(string.format(
    'HK_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "non2xx": %d, ' ..
    '"counted_in_lua": %s, "connect_errors": %d, "read_errors": %d, "write_errors": %d, ' ..
    '"timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, non2xx_total, tostring(counted),
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end

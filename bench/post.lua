-- wrk body script: POST the AdmissionReview in $BENCH_BODY on every request (keep-alive connections).
local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  -- one machine-readable line for bench/run.py
  io.write(string.format("BENCH requests=%d errors=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
      + summary.errors.timeout, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99)))
end

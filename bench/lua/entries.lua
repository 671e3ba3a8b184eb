-- W1: POST /v1/patients/{id}/entries, one patient per connection (wrk runs one
-- connection per thread, and each thread has a Lua state of its own).
-- Environment: BENCH_PATIENTS (ids, comma-separated: two per connection), BENCH_BODY
-- (the JSON entry), BENCH_TOKEN (a bearer token, or empty for the plain baseline),
-- BENCH_RUN (0 for the warm-up, 1 for the measured run: each writes to its own half of
-- the patients, so a warm-up request still in flight never races a measured one for a
-- chart), BENCH_LUA (this folder).
dofile(os.getenv("BENCH_LUA") .. "/common.lua")

function init(args)
  local patients = {}
  for id in string.gmatch(os.getenv("BENCH_PATIENTS") or "", "[^,]+") do
    patients[#patients + 1] = id
  end
  assert(#patients > 0, "BENCH_PATIENTS is empty")
  local half = math.floor(#patients / 2)
  local run = tonumber(os.getenv("BENCH_RUN") or "0")
  path = "/v1/patients/" .. patients[((index - 1) % half) + 1 + run * half] .. "/entries"
  body = os.getenv("BENCH_BODY")
  headers = { ["Content-Type"] = "application/json" }
  local token = os.getenv("BENCH_TOKEN") or ""
  if token ~= "" then
    headers["Authorization"] = "Bearer " .. token
  end
end

function request()
  return wrk.format("POST", path, headers, body)
end

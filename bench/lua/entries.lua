-- W1: POST /v1/patients/{id}/entries, one patient per connection (wrk runs one
-- connection per thread, and each thread has a Lua state of its own).
-- Environment: BENCH_PATIENTS (ids, comma-separated), BENCH_BODY (the JSON entry),
-- BENCH_TOKEN (a bearer token, or empty for the plain baseline), BENCH_LUA (this folder).
dofile(os.getenv("BENCH_LUA") .. "/report.lua")

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("index", threads)
end

function init(args)
  local patients = {}
  for id in string.gmatch(os.getenv("BENCH_PATIENTS") or "", "[^,]+") do
    patients[#patients + 1] = id
  end
  assert(#patients > 0, "BENCH_PATIENTS is empty")
  path = "/v1/patients/" .. patients[((index - 1) % #patients) + 1] .. "/entries"
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

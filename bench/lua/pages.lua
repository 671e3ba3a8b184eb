-- R1: GET one of several paths (a chart's timeline pages) chosen at random per request.
-- Environment: BENCH_PATHS (paths with their query, one a line), BENCH_TOKEN (a bearer
-- token), BENCH_LUA (this folder).
dofile(os.getenv("BENCH_LUA") .. "/common.lua")

function init(args)
  paths = {}
  for line in string.gmatch(os.getenv("BENCH_PATHS") or "", "[^\n]+") do
    paths[#paths + 1] = line
  end
  assert(#paths > 0, "BENCH_PATHS is empty")
  math.randomseed(7 + index)
  headers = { ["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "") }
end

function request()
  return wrk.format("GET", paths[math.random(#paths)], headers)
end

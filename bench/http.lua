-- wrk script for bench/bench_http.py: one credo endpoint per run, random subjects, real
-- credentials, and a count of every answer by status.
--
-- Configured from the environment (bench_http.py sets it):
--   BENCH_ENDPOINT   standing | checks | search | cases
--   BENCH_SECONDS    measured seconds; afterwards each connection only asks GET /healthz
--                    (logs nothing), so when wrk stops no answered inquiry is in flight
--   BENCH_SUBJECTS   subjects s-0000001 .. s-<N>
--   BENCH_QUERY_KEY / BENCH_PURPOSE              standing: API key and purpose
--   BENCH_CHECK_KEY / BENCH_CHECK_PURPOSE / BENCH_CHECK_SIZE   checks
--   BENCH_COOKIE     cases: the reviewer's session cookie
--   BENCH_SURNAMES   search: comma-separated search texts
--   BENCH_SEED       random seed (each thread adds its number)
-- At the end it prints one line `BENCH {"statuses": {...}, "drained": N}` for the measured
-- requests' statuses and the drain answers.

local endpoint = os.getenv("BENCH_ENDPOINT") or "standing"
local seconds = tonumber(os.getenv("BENCH_SECONDS") or "10")
local subjects = tonumber(os.getenv("BENCH_SUBJECTS") or "1000000")
local check_size = tonumber(os.getenv("BENCH_CHECK_SIZE") or "10")
local query_auth = "Bearer " .. (os.getenv("BENCH_QUERY_KEY") or "")
local check_auth = "Bearer " .. (os.getenv("BENCH_CHECK_KEY") or "")
local purpose = os.getenv("BENCH_PURPOSE") or "promotion-review"
local check_purpose = os.getenv("BENCH_CHECK_PURPOSE") or "procurement-screening"
local cookie = os.getenv("BENCH_COOKIE") or ""
local surnames = {}
for name in string.gmatch(os.getenv("BENCH_SURNAMES") or "wang,li", "[^,]+") do
  table.insert(surnames, name)
end

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("number", counter)
  table.insert(threads, thread)
end

local deadline
local health = wrk.format("GET", "/healthz")

function init(args)
  math.randomseed(tonumber(os.getenv("BENCH_SEED") or "7") + number)
  statuses = {}
  drained = 0
  deadline = os.time() + seconds
end

local function subject()
  return string.format("s-%07d", math.random(1, subjects))
end

local function standing()
  return wrk.format("GET", "/v1/subjects/" .. subject() .. "/standing?purpose=" .. purpose,
    { ["Authorization"] = query_auth })
end

local function checks()
  local seen, ids = {}, {}
  while #ids < check_size do
    local id = subject()
    if not seen[id] then
      seen[id] = true
      table.insert(ids, '"' .. id .. '"')
    end
  end
  local body = '{"purpose": "' .. check_purpose .. '", "subject_ids": [' ..
    table.concat(ids, ", ") .. "]}"
  return wrk.format("POST", "/v1/checks",
    { ["Authorization"] = check_auth, ["Content-Type"] = "application/json" }, body)
end

local function search()
  return wrk.format("GET", "/v1/public/search?q=" .. surnames[math.random(1, #surnames)])
end

local function cases()
  return wrk.format("GET", "/v1/cases?status=open&limit=50&offset=" .. math.random(0, 20) * 50,
    { ["Cookie"] = cookie })
end

local makers = { standing = standing, checks = checks, search = search, cases = cases }
local make = makers[endpoint]

function request()
  if os.time() >= deadline then
    return health
  end
  return make()
end

function response(status, headers, body)
  if body == '{"status":"ok"}' then
    drained = drained + 1
    return
  end
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local total, drain = {}, 0
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for key, n in pairs(counts) do
      total[key] = (total[key] or 0) + n
    end
    drain = drain + thread:get("drained")
  end
  local parts = {}
  for key, n in pairs(total) do
    table.insert(parts, string.format('"%s": %d', key, n))
  end
  io.write(string.format('BENCH {"statuses": {%s}, "drained": %d}\n',
    table.concat(parts, ", "), drain))
end

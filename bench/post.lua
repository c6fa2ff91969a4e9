-- wrk script: POST /v1/check with msgpack bodies, as rspamd's plugin sends them.
--
--   wrk -t T -s bench/post.lua URL -- MODE [HOT] [DELAY_MS] [SALT] [T]
--
-- MODE  warm:  cycle over HOT pre-built senders (everything cached after one pass)
--       cold:  every request a new client IP and a new sender domain
--       mixed: 80% a repeat sender from a pool of HOT, 20% new as in cold
--       pool:  walk the HOT pool once in order (warms the cache for mixed)
--       replay: as cold, but the same HOT new senders over and over, in the same order
--               (run after a pass that cached their DNS answers: cold checks without
--               DNS misses, when the reply cache is off)
-- DELAY_MS  mean per-connection pause between requests (paces the load), 0 = flat out;
--           each pause is random in [0, 2 x DELAY_MS], so connections do not fall into step
-- SALT  makes cold sender domains differ between runs; T  wrk's thread count
-- Client/name numbering matches bench/zones.py. done() prints one JSON line.

local mode, hot, pause, salt = "warm", 64, 0, "0"
local counter, thread_id, threads = 0, 0, 1
local prebuilt = {}
local DOMAINS, CLIENTS = 5000, 100000
local headers = { ["Content-Type"] = "application/msgpack", ["Accept"] = "application/json" }

local function str(s)
  local n = #s
  if n < 32 then return string.char(0xa0 + n) .. s end
  return string.char(0xd9, n) .. s
end

local function ip_of(i)
  local n = 256 + i
  return string.format("198.%d.%d.%d", 18 + math.floor(n / 65536), math.floor(n / 256) % 256, n % 256)
end

local function ptr_name(i)
  local kind = i % 10
  if kind == 0 then return nil end
  if kind == 1 or kind == 2 then return (ip_of(i):gsub("%.", "-")) .. ".dyn.bench-isp.net" end
  return "mta" .. i .. ".bench-senders.net"
end

local function body(i, domain)
  counter = counter + 1
  local helo = ptr_name(i) or "localhost"
  return "\133" -- fixmap, 5 entries
    .. str("ip") .. str(ip_of(i))
    .. str("helo") .. str(helo)
    .. str("mail_from") .. str("bounce@" .. domain)
    .. str("queue_id") .. str(string.format("%X%05d", thread_id, counter % 100000))
    .. str("user") .. str("")
end

local function known(i) return body(i, "s" .. (i % DOMAINS) .. ".bench-mail.org") end

local fresh = 0
local function new_sender()
  -- unique across threads; wraps only after CLIENTS - HOT requests (replay: after HOT)
  local i = hot + (thread_id + fresh * threads) % (CLIENTS - hot)
  fresh = fresh + 1
  if mode == "replay" then fresh = fresh % hot end
  return body(i, "d" .. salt .. "x" .. (thread_id + fresh * threads) .. ".cold-senders.net")
end

local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  mode = args[1] or mode
  hot = tonumber(args[2] or hot)
  pause = tonumber(args[3] or pause)
  salt = args[4] or salt
  threads = tonumber(args[5] or threads)
  thread_id = tonumber(wrk.thread:get("id")) or 0
  if pause > 0 then
    -- Random, not fixed: with a fixed pause the connections stay in phase and arrive
    -- as one burst each period, which measures queueing in the burst, not the service.
    delay = function() return math.random(0, 2 * pause) end -- wrk looks for delay() after init()
  end
  math.randomseed(1000 + thread_id)
  if mode == "warm" then
    for i = 0, hot - 1 do prebuilt[#prebuilt + 1] = wrk.format("POST", "/v1/check", headers, known(i)) end
  end
end

local step = 0
function request()
  step = step + 1
  if mode == "warm" then
    return prebuilt[(step % #prebuilt) + 1]
  elseif mode == "pool" then
    return wrk.format("POST", "/v1/check", headers, known((thread_id + step * threads) % hot))
  elseif mode == "mixed" and math.random() < 0.8 then
    return wrk.format("POST", "/v1/check", headers, known(math.random(0, hot - 1)))
  end
  return wrk.format("POST", "/v1/check", headers, new_sender())
end

function done(summary, latency, _requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"mean_us":%.1f,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end

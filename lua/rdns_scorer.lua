--[[
rdns_scorer: rspamd module for the rdns-scorer service.

For every scanned message it sends the SMTP client's IP, HELO, MAIL FROM and
MTA-resolved hostname to the service (POST <path>, msgpack) and inserts the
symbols the service returns. Each symbol is registered at weight 1.0 and the
service's score is passed as the multiplier, so the service's weights decide
and an admin can still rescale or zero any symbol (or cap the group with
max_score) in rspamd's own config.

The module fails open: when the service cannot answer in time, or answers
something unusable, the scan goes on and RL_SCORER_FAIL (weight 0) records
why.

Installation: copy this file to /etc/rspamd/plugins.d/ and add a top-level
`rdns_scorer { ... }` section to /etc/rspamd/rspamd.conf.local (see
rdns_scorer.conf), or run `rdns-scorer rspamd install`. Docs: docs/rspamd.md.
]] --

local N = 'rdns_scorer'

-- One comment line right above each key: UCL gives confighelp the comment
-- before a key as its description (a commented-out key would take it).
local EXAMPLE = [[
rdns_scorer {
  # rdns-scorer services, "host:port" or a list; round robin unless it starts "master-slave:" etc.
  servers = "127.0.0.1:11340";
  # Request path on the service
  path = "/v1/check";
  # A scan never waits longer than this for the service (below task_timeout)
  timeout = 1s;
  # The service's [server] token, sent as "Authorization: Bearer <token>"; empty: none
  token = "";
  # Group of all rdns_scorer symbols (cap it with group "rdns_scorer" { max_score })
  group = "rdns_scorer";
  # A server that hung is left alone this long by each worker (0: always ask)
  holddown = 10s;
  # Timeouts in a row (each of a request sent after the last) before the holddown
  holddown_after = 2;
  # Pool connections (false only behind a proxy sending 1xx or extra responses)
  keepalive = true;

  # Local networks and authenticated users are skipped; setting either one here
  # makes rspamd ignore both in the options section:
  # check_local = true;
  # check_authed = true;
}
]]

if confighelp then
  rspamd_config:add_example(nil, N,
    'Score SMTP clients by reverse DNS, HELO and MAIL FROM via the rdns-scorer service',
    EXAMPLE)
  return
end

local rspamd_http = require "rspamd_http"
local rspamd_ip = require "rspamd_ip"
local rspamd_logger = require "rspamd_logger"
local rspamd_upstream_list = require "rspamd_upstream_list"
local rspamd_util = require "rspamd_util"
local lua_util = require "lua_util"
local ucl = require "ucl"

local DEFAULT_PORT = 11340
-- A reply is read and parsed in the callback, where the plugin's timeout no longer
-- applies: one bigger than this (a real one is a few KB, even with max_ptr_names
-- raised far) fails open unread instead of blocking the worker.
local MAX_REPLY_BYTES = 262144
-- A reply bigger than this is read for how deep it nests before it is parsed, and
-- one nesting deeper than MAX_REPLY_DEPTH fails open unparsed (a real one nests 4,
-- {"symbols": [{"options": [...]}]}, as the SpamAssassin plugin bounds it). Handing
-- libucl's parse of one nested tens of thousands deep to Lua held the worker ~0.5 s
-- before it raised. A body this small cannot nest deep enough to cost more than a
-- few ms (8,000 levels: ~2.5 ms), so real replies (a few KB) are not read twice.
local DEPTH_CHECKED_BYTES = 16384
local MAX_REPLY_DEPTH = 16
local CHECK_SYMBOL = 'RDNS_SCORER_CHECK' -- the callback; never inserted itself
local FAIL_SYMBOL = 'RL_SCORER_FAIL'
local UNKNOWN_SYMBOL = 'RL_SCORER_UNKNOWN'
-- The service cuts every text field to this many characters before any check
-- (MAX_FIELD_CHARS in scorer/protocol.py; a test keeps the two equal). Cutting
-- here too keeps a 20 KB HELO from making the body too large: the 413 would
-- switch every check off for that message.
local MAX_FIELD_OCTETS = 1024
-- The reply is JSON, read by libucl, which by default also runs UCL macros:
-- .include or .load in a reply would pull any file rspamd can read into the
-- symbols' options (the scan result, history, logs).
local UCL_PARSER_DISABLE_MACRO = 32
-- The largest score the service can send: it refuses weights beyond 2^53 (MAX_NUMBER
-- in scorer/config.py; a test keeps the two equal), and a symbol scores at most its
-- weight. A larger one, finite or not, is no reply of the service's: two symbols of
-- 1e308 add up to an infinite total, which rspamd reports as no score (null) and
-- rejects.
local MAX_SCORE = 9007199254740992
-- What one symbol adds at most, either way, as in the SpamAssassin plugin (SCORE_LIMIT
-- in scorer/integrations/__init__.py and RdnsScorer.pm; a test keeps them equal): a
-- forged reply (an impostor on the port while the service is down, docs/security.md)
-- could otherwise add any score, a negative one past every group max_score. The
-- service's weights above it are warned about (config check).
local SCORE_LIMIT = 20
-- The 4xx answers another instance may not give, retried on the next address within
-- the timeout as a 5xx is (any other 4xx is the request's fault, which every instance
-- shares). 401 and 403: the token is the instance's, and while it is being changed on
-- several instances one may not know yet what the others take. 408: that instance gave
-- up on the connection (RFC 9110 section 15.5.9: the client may repeat the request).
-- 421: sent to an instance that will not answer it (section 15.5.20: may be retried on
-- another connection). 429: that instance is overloaded, as with its 503 (RFC 6585
-- section 4). Not marked failed: the instance is up.
local RETRIED_4XX = { [401] = true, [403] = true, [408] = true, [421] = true, [429] = true }

-- Every symbol the service or this plugin can produce: a copy of SYMBOLS in
-- the service's scorer/symbols.py, rendered by
-- scorer.integrations.rspamd.lua_symbols_block(). tests/test_rspamd_install.py
-- fails when the two differ; do not edit by hand.
-- luacheck: push ignore 631
-- symbols:begin
local SYMBOLS = {
  { "RL_PTR_MISSING", "ptr", "The client IP has no PTR record (or only ones naming the root, '.', an IP address or loopback, 'localhost')." },
  { "RL_PTR_UNVERIFIED", "ptr", "PTR names exist, but none resolves back to the client IP (FCrDNS / iprev fails)." },
  { "RL_PTR_GENERIC", "ptr", "The PTR name is an ISP-assigned generic name: it encodes the client IP, or carries access keywords in a digit-heavy name (score is weight x confidence)." },
  { "RL_PTR_TEMPFAIL", "ptr", "The PTR or its forward confirmation could not be checked (DNS timeout/SERVFAIL, or more PTR names than max_ptr_names)." },
  { "RL_SKIPPED_LOCAL", "policy", "The client is in a skipped (local/private) network; no checks were run." },
  { "RL_ALLOWLISTED", "policy", "An ip, ptr or helo allowlist entry matched (the client's address, or a forward-confirmed PTR); the checks it covers were not scored." },
  { "RL_ALLOWLISTED_FROM", "policy", "A from allowlist entry matched the envelope sender's domain; the MAIL FROM checks were not scored." },
  { "RL_HELO_LOCALHOST", "helo", "HELO/EHLO claims to be localhost." },
  { "RL_HELO_NOT_FQDN", "helo", "HELO/EHLO is a single label or under a non-public suffix (.local, .lan, ...)." },
  { "RL_HELO_BARE_IP", "helo", "HELO/EHLO is an IP address without brackets, which is not valid syntax (another host's address also scores RL_HELO_LITERAL_MISMATCH, as in brackets)." },
  { "RL_HELO_LITERAL_MISMATCH", "helo", "HELO/EHLO names an address that is not the client's own: an address literal, or a bare or malformed one, which also scores RL_HELO_BARE_IP or RL_HELO_INVALID (weight x 1/3 for an internal one: RFC 1918, CGNAT, ULA, link-local; or another address in an IPv6 client's own /64)." },
  { "RL_HELO_INVALID", "helo", "HELO/EHLO has characters or label lengths no hostname can have, or is a malformed address literal (one without its IPv6: tag, too; another host's address also scores RL_HELO_LITERAL_MISMATCH)." },
  { "RL_HELO_NO_ADDRESS", "helo", "HELO/EHLO is a FQDN with no A or AAAA record, or only non-public ones (loopback, RFC 1918, CGNAT, ULA, multicast, reserved, documentation) that are not the client's." },
  { "RL_HELO_FORGED_LOCAL", "helo", "The client greets with one of our own names or addresses." },
  { "RL_HELO_GENERIC", "helo", "HELO/EHLO is a generic ISP-style name for the client IP (weight x confidence)." },
  { "RL_HELO_TEMPFAIL", "helo", "The HELO name could not be resolved because of a DNS failure." },
  { "RL_MAILFROM_BAD_SYNTAX", "mailfrom", "The envelope sender (MAIL FROM) is not a valid address." },
  { "RL_MAILFROM_SPECIAL_USE", "mailfrom", "The MAIL FROM domain is special-use (.invalid, .test, .example, .local, single label, ...)." },
  { "RL_MAILFROM_NXDOMAIN", "mailfrom", "The MAIL FROM domain does not exist." },
  { "RL_MAILFROM_NO_MAIL_HOST", "mailfrom", "The MAIL FROM domain exists but has neither MX nor A/AAAA (RFC 5321 section 5.1)." },
  { "RL_MAILFROM_NULL_MX", "mailfrom", "The MAIL FROM domain publishes a null MX (RFC 7505): it accepts no mail." },
  { "RL_MAILFROM_BOGUS_MX", "mailfrom", "Every MX target of the MAIL FROM domain (without MX: the domain itself) is an IP literal, unresolvable, or resolves only to loopback/private/reserved addresses; or the sender is at such an address literal (user@[10.0.0.1])." },
  { "RL_MAILFROM_TEMPFAIL", "mailfrom", "The MAIL FROM domain could not be checked because of a DNS failure (or every MX target looked up is unusable but more than max_mx_hosts exist)." },
  { "RL_SCORER_FAIL", "plugin", "The plugin could not get an answer from the scorer service (fail-open)." },
  { "RL_SCORER_UNKNOWN", "plugin", "The service returned a symbol the plugin cannot score: in rspamd one it does not know (version skew), in SpamAssassin a malformed or reserved name." },
}
-- symbols:end
-- luacheck: pop

local settings = {
  servers = '127.0.0.1:' .. DEFAULT_PORT,
  path = '/v1/check',
  timeout = 1.0,
  check_local = false,
  check_authed = false,
  token = '',
  group = N,
  holddown = 10.0,
  -- Hung timeouts in a row before a server is held down: one slow reply (a pause of the
  -- service's, one slow resolver answer) held a lone server down for the whole
  -- holddown, every message meanwhile unscored.
  holddown_after = 2,
  -- Pooled connections: a new one per scan costs the service about 3x its
  -- throughput. false is for something between rspamd and the service that sends
  -- an interim (1xx) or an extra response: rspamd 3.4 crashes on those when it
  -- pools the connection (docs/rspamd.md).
  keepalive = true,
}

-- A circuit breaker per address, in each worker: rspamd's upstream list keeps asking a
-- lone server it has marked down, so without one a hung service (or a host dropping
-- connection attempts) cost every message the whole timeout. Times are
-- rspamd_util.get_ticks(). An entry:
--   hangs:      hung timeouts in a row (closed: fewer than holddown_after);
--   seen:       when the last of them was counted. A hang counts only for a request
--               sent after that: the scans that time out together in one stall of the
--               service are one hang, not holddown_after of them;
--   held_until: no scan asks it before then (open);
--   probe:      when the one scan let through once the hold-down is over was sent, nil
--               while none is out (half-open). The others pass it over until that
--               probe is answered, which closes the breaker, or hangs, which holds the
--               server down again at once.
-- Any answer, or a failure other than a timeout, closes it (the entry goes): the
-- server is not hung.
local breakers = {}
-- A probe whose callback never came (none should be missing) is taken for over this
-- long after its timeout, so that one lost callback cannot hold a server down for good.
local PROBE_GRACE = 1.0

-- Names the service may return (every family but "plugin").
local service_symbols = {}
for _, entry in ipairs(SYMBOLS) do
  if entry[2] ~= 'plugin' then
    service_symbols[entry[1]] = true
  end
end

-- rspamd resolves the server names when it loads the config, with a blocking lookup.
-- Entries that did not resolve then (the scorer container not up when rspamd started)
-- are asked again every RESOLVE_RETRY seconds by each scanning worker, with rspamd's
-- asynchronous resolver on the worker's event loop, outside any scan: no message
-- waits for it (resolve_late). Meanwhile scans use the entries that did resolve, or
-- fail open saying so when none did (upstreams nil).
local upstreams
local n_upstreams = 1
local RESOLVE_RETRY = 10.0
-- The most addresses listed for one server name, and the get_addr() calls a retry
-- makes to find one not tried (rspamd keeps no more than a few per name).
local ADDRESSES_PER_SERVER = 16
-- "still do not resolve" is logged at most this often (each scanning worker asks
-- every RESOLVE_RETRY s, with or without mail: a warning each time would flood).
local STILL_MISSING_LOG = 300.0
local still_logged_until = 0 -- rspamd_util.get_ticks() before which it is not said again
-- The entries of `servers` in the order written, the addresses of those that resolved,
-- as "address:port" (entry -> its addresses; the numbers-only list adds each entry's
-- ":priority"), and, when some did not resolve at load, the others ({host, port, rest,
-- text}).
local all_entries = {}
local resolved = {}
local late_entries = {}
-- When every entry resolved at load (the list keeps the names): the addresses each
-- name had then, "address:port", by its place in the list; empty for a list of
-- numbers. A retry's last resort (untried_address).
local listed_at_load = {}
local skip_conf -- {check_local, check_authed} for lua_util.is_skip_local_or_authed

-- `value` cut to `limit` octets at most, never inside a UTF-8 character: a character
-- cut in two reached the service as bytes that are no UTF-8, scored and shown as such
-- ("bytes that are not UTF-8") where the client sent valid text. RFC 3629 section 3:
-- a character is a lead byte (0xxxxxxx, or 110xxxxx, 1110xxxx, 11110xxx for two, three
-- or four octets) and then its continuation bytes (10xxxxxx). Text that is no UTF-8
-- where it is cut is cut at the limit, as it is.
local function cut_at_character(value, limit)
  if #value <= limit then
    return value
  end
  -- Back from the first octet left out to the lead byte of its character, over three
  -- continuation bytes at most.
  for start = limit + 1, math.max(limit - 2, 1), -1 do
    local byte = value:byte(start)
    if byte < 0x80 or byte >= 0xC0 then
      local length = byte >= 0xF0 and 4 or byte >= 0xE0 and 3 or byte >= 0xC0 and 2 or 1
      -- The character starting there ends within the limit (only text that is no
      -- UTF-8 has more continuation bytes than its lead says): cut at the limit.
      return value:sub(1, start + length - 1 > limit and start - 1 or limit)
    end
  end
  return value:sub(1, limit)
end

-- What the service is told about the SMTP session. Only strings: rspamd 3.4's
-- msgpack encoder garbles negative integers, and nil would become ucl.null.
local function build_request(task, ip)
  local req = { ip = ip:to_string() }
  local function put(field, value)
    if type(value) == 'string' then
      req[field] = cut_at_character(value, MAX_FIELD_OCTETS)
    end
  end
  put('helo', task:get_helo())
  local from = task:get_from('smtp')
  if type(from) == 'table' and type(from[1]) == 'table' then
    local addr = from[1]
    if addr.flags and addr.flags.empty then
      req.mail_from = '' -- the null sender <>
    elseif type(addr.raw) == 'string' and addr.raw ~= '' then
      -- As the MTA passed it: addr.addr drops the quotes of a quoted local part
      -- ("john doe"@example.org would arrive as invalid syntax). The service
      -- takes off the angle brackets itself.
      put('mail_from', addr.raw)
    else
      put('mail_from', addr.addr)
    end
  else
    -- rspamd drops an envelope sender its own parser rejects ("root", "a@b@c",
    -- rspamd 3.4: any address with a non-ASCII character): send what the MTA passed
    -- over HTTP (rspamc, Exim), so the service can score the syntax. Through the
    -- milter (Postfix) nothing of it is left: said in the log, as the MAIL FROM checks
    -- are then not made (docs/rspamd.md).
    local raw = task:get_request_header('From')
    if raw then
      put('mail_from', tostring(raw))
    elseif task:get_recipients('smtp') then
      rspamd_logger.infox(task, '%s: the MTA passed no envelope sender rspamd could read ' ..
        '(a non-ASCII or malformed address): MAIL FROM not checked', N)
    end
  end
  put('hostname', task:get_hostname())
  put('queue_id', task:get_queue_id())
  put('user', task:get_user())
  return req
end

-- The fail-open path: record why, score nothing, let the scan go on. `before`: what
-- became of the scan's earlier attempts and of the servers it did not ask (held down),
-- each "SERVER: REASON"; the last failure alone hid that every instance failed, each
-- its own way (one refused, the next timed out). `held`: the scan asked no server, each
-- held down: said at debug only, as the hang that held it down was said once (an info
-- line a scan for as long as that lasts drowned the log; rspamd's task log line has
-- the symbol and its options all the same).
local function fail_open(task, reason, server, before, held)
  local options = { reason, 'server=' .. server }
  if before and #before > 0 then
    table.insert(options, 'before: ' .. table.concat(before, '; '))
  end
  local log = held and function(...) lua_util.debugm(N, ...) end or rspamd_logger.infox
  log(task, '%s: failing open (server %s): %s', N, server, table.concat(options, ', '))
  task:insert_result(FAIL_SYMBOL, 1.0, options)
end

-- Whether word is a JSON number (RFC 8259 section 6: -?int, then .digits, then
-- e[+-]digits, each part optional but the first). A part at a time: one pattern with
-- three optional digit runs backtracks in cubic time over a long run of digits that
-- ends in something else (3,000 of them held the worker for 20 s).
local function is_json_number(word)
  local rest = word:match('^%-?%d+(.*)$')
  if not rest then
    return false
  end
  rest = rest:match('^%.%d+(.*)$') or rest
  return rest == '' or rest:match('^[eE][%+%-]?%d+$') ~= nil
end

-- Why a big body is refused unparsed, or nil: nested deeper than `limit`, or not the
-- plain JSON the service sends. Read token by token only as far as it takes to tell.
-- Plain JSON only, because libucl reads more: a '"' in a 'single-quoted' string, a
-- comment or a bare word (tr"ue) was taken here for a string's start, and the brackets
-- after it went uncounted into the parser (50,000 deep: accepted; 130,000: the worker
-- held ~1 s, then "stack overflow"). Outside strings JSON has structure, whitespace,
-- numbers and true, false and null (RFC 8259 section 2), each ended by structure or
-- whitespace; inside one, libucl ends it where this does.
local function big_body_problem(body, limit)
  local depth, at = 0, 1
  while true do
    at = body:find('[^ \t\r\n]', at) -- RFC 8259's whitespace
    if not at then
      return nil
    end
    local c = body:byte(at)
    local token_end -- of a string, number or literal, which structure must follow
    if c == 91 or c == 123 then -- [ {
      depth = depth + 1
      if depth > limit then
        return string.format('nested more than %d deep', limit)
      end
    elseif c == 93 or c == 125 then -- ] }
      depth = depth - 1
    elseif c == 34 then -- '"': on past the string's closing quote, escapes and all
      local i = at
      repeat
        i = body:find('["\\]', i + 1)
        if not i then
          return nil -- unterminated: the parser says so
        end
        local escape = body:byte(i) == 92
        if escape then
          i = i + 1
        end
      until not escape
      token_end = i
    elseif c ~= 44 and c ~= 58 then -- not , or :
      local word = body:match('^[%w%.%+%-]+', at)
      if not word or not (word == 'true' or word == 'false' or word == 'null'
          or is_json_number(word)) then
        return 'not plain JSON'
      end
      token_end = at + #word - 1
    end
    if token_end then
      at = token_end + 1
      local follower = body:byte(at)
      if follower and not string.char(follower):find('[%s,:%]}]') then
        return 'not plain JSON'
      end
    else
      at = at + 1
    end
  end
end

-- A reply body as a Lua value, or nil and why not (macros off: UCL_PARSER_DISABLE_MACRO).
local function parse_body(body)
  if not body or #body == 0 then
    return nil, 'empty reply body'
  end
  local problem = #body > DEPTH_CHECKED_BYTES and big_body_problem(body, MAX_REPLY_DEPTH)
  if problem then
    return nil, 'unreadable reply: ' .. problem
  end
  local parser = ucl.parser(UCL_PARSER_DISABLE_MACRO)
  local ok, err = parser:parse_text(body)
  if not ok then
    return nil, 'unparsable reply: ' .. tostring(err)
  end
  -- Handing libucl's object to Lua raises for one nested too deep ("stack overflow",
  -- past ~65,000 levels, which only a body nests_deeper has refused could hold); both
  -- readers of a body are called from the HTTP callback, where an error would cost
  -- the message its RL_SCORER_FAIL.
  local converted, reply = pcall(parser.get_object, parser)
  if not converted then
    return nil, 'unreadable reply: ' .. tostring(reply)
  end
  return reply
end

-- The "error" words of a parsed reply ({"error": ...}), nil if none: the service's own
-- for a request it refused, for the fail-open reason ("HTTP 401: missing or wrong
-- bearer token" says what to fix), and whatever answered a 200 that is no verdict.
local function error_words(reply)
  if type(reply) == 'table' and type(reply.error) == 'string' then
    return reply.error:sub(1, 100)
  end
  return nil
end

-- A JSON array. libucl gives an object as a table too, whose entries ipairs() skips:
-- {"symbols": {...}} would score nothing, silently, where a list would have scored.
local function is_list(value)
  if type(value) ~= 'table' then
    return false
  end
  local count = 0
  for _ in pairs(value) do
    count = count + 1
  end
  return count == #value
end

-- Inserts the service's symbols; returns an error string for an unusable reply.
-- The whole reply is checked before anything is inserted: all or nothing.
local function apply_reply(task, body)
  local reply, unusable = parse_body(body)
  if unusable then
    return unusable
  end
  if type(reply) ~= 'table' or not is_list(reply.symbols) then
    -- Words of its own ({"error": ...}) say what answered: a proxy, another service.
    local said = error_words(reply)
    return 'reply has no symbols list' .. (said and (': ' .. said) or '')
  end
  local known, unknown, seen = {}, {}, {}
  for _, sym in ipairs(reply.symbols) do
    -- libucl reads a bare nan or inf in JSON as those numbers: nan is no number it
    -- equals, inf is beyond MAX_SCORE.
    if type(sym) ~= 'table' or type(sym.name) ~= 'string' or type(sym.score) ~= 'number'
        or sym.score ~= sym.score or math.abs(sym.score) > MAX_SCORE then
      return 'malformed symbol in reply'
    end
    local name = sym.name
    if seen[name] then
      -- Inserted twice, a symbol would count twice; the service never does this.
      lua_util.debugm(N, task, 'ignored a second %s in the reply', name)
    elseif service_symbols[name] then
      local options = {}
      if type(sym.options) == 'table' then
        for _, opt in ipairs(sym.options) do
          -- Text only: tostring() raises on a nested object from ucl, and one odd
          -- option must not cost the message the reply's other symbols.
          if type(opt) == 'string' or type(opt) == 'number' then
            options[#options + 1] = tostring(opt)
          end
        end
      end
      known[#known + 1] = { name, math.max(-SCORE_LIMIT, math.min(SCORE_LIMIT, sym.score)),
        options }
    else
      unknown[#unknown + 1] = name
    end
    seen[name] = true
  end
  for _, hit in ipairs(known) do
    task:insert_result(hit[1], hit[2], hit[3])
  end
  if #unknown > 0 then
    task:insert_result(UNKNOWN_SYMBOL, 1.0, unknown)
  end
  return nil
end

-- `servers` as written (a string or a list), for messages.
local function servers_text()
  if type(settings.servers) == 'table' then
    return table.concat(settings.servers, ', ')
  end
  return tostring(settings.servers)
end

-- rspamd's rotations for an upstream list, written before its first entry as other
-- modules' `servers` take them ("master-slave:10.0.0.5:11340, 10.0.0.6:11340"): how a
-- scan's first attempt picks its server. Each is given the upstream list and the
-- client's address. The list is created with the same prefix, and rspamd's getters
-- follow the rotation a list was created with, whichever is called.
local ROTATIONS = {
  ['round-robin'] = function(list) return list:get_upstream_round_robin() end,
  -- The first entry (or the highest ":priority") unless rspamd marked it down: a
  -- primary and its backup.
  ['master-slave'] = function(list) return list:get_upstream_master_slave() end,
  -- rspamd's Lua API has no get_upstream_random: on a "random:" list this one picks
  -- at random.
  random = function(list) return list:get_upstream_round_robin() end,
  -- One client's messages go to one instance while it is up, whose DNS cache then
  -- holds that client's names.
  hash = function(list, client) return list:get_upstream_by_hash(client) end,
}
local ROTATION_NAMES = 'round-robin:, master-slave:, random:, hash:'
-- None written: round robin, as the module always asked.
local rotation = 'round-robin'

-- Whether `name` (in lower case, as rspamd reads it without regard to case) is read as
-- a rotation: one the module takes, or "sequential", which rspamd 3.4 does not read,
-- so that the check can refuse it by name.
local function is_rotation(name)
  return ROTATIONS[name] ~= nil or name == 'sequential'
end

-- `servers` as written less its rotation prefix, and that prefix's name in lower case
-- or nil when none is written. Only a rotation (is_rotation) is a prefix:
-- "failover:10.0.0.5" stays an entry, which the check then refuses.
local function split_rotation(text)
  local name, rest = text:match('^[,;%s]*(%a[%w%-]*):(.*)$')
  name = name and name:lower()
  if name and is_rotation(name) then
    return rest, name
  end
  return text, nil
end

-- The entries of `servers` as {host, port, rest, text}: "host", "host:port",
-- "[v6]:port", an IP literal, each maybe followed by rspamd's ":priority" (kept in
-- `rest`); `text` as written. Separated as rspamd separates upstreams (commas,
-- semicolons, spaces), after the rotation prefix, if any (also returned).
local function server_entries()
  local text, written_rotation = split_rotation(servers_text())
  local entries = {}
  for item in text:gmatch('[^,;%s]+') do
    local host, port, rest = item:match('^%[(.+)%]:(%d+)(.*)$')
    if not host then
      host, port, rest = item:match('^([^:]+):(%d+)(.*)$')
    end
    table.insert(entries, { host or item, tonumber(port) or DEFAULT_PORT, rest or '', item })
  end
  return entries, written_rotation
end

-- An upstream list of `texts` with the rotation of `servers`: a list rebuilt from
-- addresses keeps it too.
local function upstream_list(texts)
  local list = #texts > 0 and rspamd_upstream_list.create(rspamd_config,
      rotation .. ':' .. table.concat(texts, ','), DEFAULT_PORT)
  if list and #list:all_upstreams() > 0 then
    return list
  end
  return nil
end

-- The address rspamd's next get_addr() gives for `upstream`, as "address:port", or nil
-- for no upstream or one without an address (a name rspamd after 3.12 keeps unresolved).
local function address_text(upstream)
  local address = upstream and upstream:get_addr()
  return address and address:to_string(true)
end

-- The addresses of a one-entry upstream list, "address:port" (a name may have
-- several, IPv4 and IPv6), or nil when it has none: a name newer rspamd keeps
-- unresolved (get_addr() nil), left to resolve_late. get_addr() is the only way to
-- them, and it moves to the next address by rspamd's rotation: 3.4 goes round them in
-- order; 3.12 moves to the next of the current address's family whose error count is
-- no higher, and to another family only when none is (to the one with the fewest
-- errors), so with two IPv4 addresses it went between them and never gave the IPv6
-- one. Each address found is therefore marked failed, on this list made for this
-- alone, fewer times than the one found before it: the last found has the fewest
-- errors of those found, and more than one not found yet (none), so both rotations
-- give one not found yet while there is one, and the last found again once there is
-- none.
local function addresses_of(list)
  local found, seen = {}, {}
  for _, upstream in ipairs(list:all_upstreams()) do
    for marks = ADDRESSES_PER_SERVER, 1, -1 do
      local text = address_text(upstream)
      if not text or seen[text] then
        break
      end
      seen[text] = true
      table.insert(found, text)
      for _ = 1, marks do
        upstream:fail(true, 'listing its addresses')
      end
    end
  end
  return #found > 0 and found or nil
end

-- Each entry of `entries` that `addresses_for(entry)` gives addresses for: those go
-- into `resolved`. The others are returned, and their texts as written.
local function take_resolved(entries, addresses_for)
  local left, texts = {}, {}
  for _, entry in ipairs(entries) do
    local addresses = addresses_for(entry)
    if addresses then
      resolved[entry] = addresses
    else
      table.insert(left, entry)
      table.insert(texts, entry[4])
    end
  end
  return left, texts
end

-- The numbers-only list's entries: the addresses of the entries that resolved, each
-- followed by its entry's ":priority" (entry[3]), in the order `servers` names them,
-- not the order they resolved in: the first is master-slave's master, and a late one
-- is the first entry as often as not.
local function resolved_addresses()
  local found = {}
  for _, entry in ipairs(all_entries) do
    for _, address in ipairs(resolved[entry] or {}) do
      table.insert(found, address .. entry[3])
    end
  end
  return found
end

-- At load: the upstream list, and the entries that do not resolve in late_entries
-- (logged). With every entry resolved, the list as rspamd reads `servers`, names and
-- all. Otherwise a list of the addresses found, numbers only: rebuilding it when a
-- late name resolves then looks no name up again (a blocking lookup on the worker's
-- loop, which could also fail and drop a server that works).
local function build_upstreams()
  local missing
  all_entries = server_entries()
  late_entries, missing = take_resolved(all_entries, function(entry)
    local list = upstream_list({ entry[4] })
    return list and addresses_of(list)
  end)
  if #missing == 0 then
    local texts = {}
    for index, entry in ipairs(all_entries) do
      texts[index] = entry[4]
      listed_at_load[index] = resolved[entry]
    end
    local list = upstream_list(texts)
    if not list or #list:all_upstreams() ~= #all_entries then
      listed_at_load = {} -- places that do not match the entries: not used
    end
    return list
  end
  local addresses = resolved_addresses()
  local list = upstream_list(addresses)
  local meanwhile = list and ('scans use ' .. table.concat(addresses, ', ')) or
      'scans fail open (RL_SCORER_FAIL)'
  rspamd_logger.errx(rspamd_config, '%s: cannot parse or resolve servers %s; %s until ' ..
      'rspamd resolves them (asked again every %s s)', N, table.concat(missing, ', '),
      meanwhile, RESOLVE_RETRY)
  return list
end

-- One round of asking rspamd's resolver for late_entries, in a scanning worker (a
-- periodic of its event loop, no task). When any resolve, the upstream list is built
-- again from the addresses known. A round starts only when the last one settled.
local waiting = 0
local function resolve_late(cfg)
  if waiting > 0 then
    return
  end
  local found, settled = {}, {} -- settled: entry -> its addresses
  waiting = 1 -- the loop below, settled after it
  local function settle()
    waiting = waiting - 1
    if waiting > 0 then
      return
    end
    local left, still = take_resolved(late_entries, function(entry) return settled[entry] end)
    local list = #left < #late_entries and upstream_list(resolved_addresses())
    if list then
      upstreams, n_upstreams = list, #list:all_upstreams()
      listed_at_load = {} -- a list of numbers now
      rspamd_logger.infox(cfg, '%s: servers now resolve: %s', N, table.concat(found, ', '))
    end
    late_entries = left
    local now = rspamd_util.get_ticks()
    if #still > 0 and now >= still_logged_until then
      still_logged_until = now + STILL_MISSING_LOG
      rspamd_logger.warnx(cfg, '%s: servers %s still do not resolve; asked every %s s ' ..
          '(said again in %s s if they still do not)', N, table.concat(still, ', '),
          RESOLVE_RETRY, STILL_MISSING_LOG)
    end
  end
  for _, entry in ipairs(late_entries) do
    local host, port, rest = entry[1], entry[2], entry[3]
    for _, rtype in ipairs({ 'a', 'aaaa' }) do
      waiting = waiting + 1
      local pattern = rtype == 'a' and '%s:%d' or '[%s]:%d'
      local sent = cfg:get_resolver():resolve(rtype, {
        name = host,
        callback = function(_, _, results)
          for _, address in ipairs(results or {}) do
            local text = string.format(pattern, address:to_string(), port)
            table.insert(found, text .. rest) -- as the list has it
            settled[entry] = settled[entry] or {}
            table.insert(settled[entry], text)
          end
          settle()
        end,
      })
      if not sent then -- refused (a name no resolver takes): no callback will come
        settle()
      end
    end
  end
  settle()
end

-- An address of `upstream` that this scan has not tried (`tried`), or nil: one the
-- next get_addr() calls give, else one of `listed` (the addresses its name had at
-- load, if known). rspamd 3.12's get_addr() stays in the family of the address just
-- refused while another of that family has no more errors: of a name with two IPv4
-- addresses and one IPv6, after both IPv4 ones refused it gave them in turn and never
-- the IPv6 one, and every scan failed open with the service there (docs/rspamd.md).
-- The marks of an address asked from `listed` land on the one get_addr() gave last.
local function untried_address(upstream, listed, tried)
  for _ = 1, ADDRESSES_PER_SERVER do
    local server = address_text(upstream)
    if server and not tried[server] then
      return server
    end
  end
  for _, server in ipairs(listed or {}) do
    if not tried[server] then
      return server
    end
  end
  return nil
end

-- Attempts this worker has sent past the rotation (retries): each takes the next
-- of the servers a scan has not tried, in turns (see next_target).
local retry_turns = 0

-- The server and address for a scan's next attempt, never one the scan already
-- tried (`tried`: address -> true). A first attempt is the rotation's pick (`client`,
-- the client's address, is hash's key), which leaves out servers rspamd has marked
-- down; the round robin takes more turns while they land on held ones, the others
-- pick the same server again, whose other address (if any) is then asked. A retry
-- takes no turn: a scan taking two turns puts the next scan's turn back on the
-- instance that failed, so with one of two failing every message asked it first; and
-- concurrent scans share the round robin, so a turn could land on it again. A retry
-- takes the servers with an address not tried in turns of its own instead (the first
-- of them, then the second...), whatever the rotation: with one of three or more
-- instances failing, its messages are spread over the others, where the first of
-- them in `servers` order took them all. An address, not a server: each get_addr()
-- gives the server's next address, and a name with an IPv4 and an IPv6 address is two
-- chances. Nil when every address was tried.
local function next_target(tried, retry, client)
  if not retry then
    local pick = ROTATIONS[rotation]
    for _ = 1, n_upstreams do
      local upstream = pick(upstreams, client)
      local server = address_text(upstream)
      if server and not tried[server] then
        return upstream, server
      end
    end
  end
  local untried = {} -- {upstream, address}, one per server with an address not tried
  for index, upstream in ipairs(upstreams:all_upstreams()) do
    local server = untried_address(upstream, listed_at_load[index], tried)
    if server then
      table.insert(untried, { upstream, server })
    end
  end
  if #untried == 0 then
    return nil, nil
  end
  local pick = untried[retry_turns % #untried + 1]
  retry_turns = retry_turns + 1
  return pick[1], pick[2]
end

-- Marks each server this scan must not ask as tried, saying why in `before`: held down
-- (its breaker open), or its hold-down over and another scan's probe out (half-open).
local function pass_over_held(tried, before)
  local now = rspamd_util.get_ticks()
  for server, breaker in pairs(breakers) do
    local probing = breaker.probe and now - breaker.probe < settings.timeout + PROBE_GRACE
    if breaker.held_until and not tried[server] and (breaker.held_until > now or probing) then
      tried[server] = true
      table.insert(before, string.format('not asked: %s timed out %.0f s ago (%s)', server,
          now - breaker.seen, probing and 'holddown over; another scan probes it' or 'holddown'))
    end
  end
end

-- The request to `server` sent at `sent_at` timed out: if it was the probe, the next
-- scan probes (again). Only the probe itself: a request sent before the hold-down that
-- times out while the probe is out (a holddown shorter than the timeout) let a second
-- scan probe at once, and wait its whole timeout for a server already being probed.
local function probe_over(server, sent_at)
  local breaker = breakers[server]
  if breaker and breaker.probe == sent_at then
    breaker.probe = nil
  end
end

-- A request to `server`, sent at `sent_at` with (nearly) the whole timeout, timed out:
-- counted, and at holddown_after in a row the server is held down (again).
local function count_hang(task, server, sent_at)
  local now = rspamd_util.get_ticks()
  local breaker = breakers[server] or { hangs = 0 }
  breakers[server] = breaker
  probe_over(server, sent_at)
  if breaker.seen and sent_at < breaker.seen then
    return -- sent before the last hang was counted: the same stall
  end
  breaker.hangs, breaker.seen = breaker.hangs + 1, now
  if settings.holddown > 0 and breaker.hangs >= settings.holddown_after then
    breaker.held_until = now + settings.holddown
    rspamd_logger.infox(task, '%s: %s timed out (%s in a row): not asked for %s s', N, server,
        breaker.hangs, settings.holddown)
  else
    -- holddown = 0 holds nothing down, whatever the count: the log must not say it will.
    rspamd_logger.infox(task, '%s: %s timed out (%s in a row%s)', N, server, breaker.hangs,
        settings.holddown > 0 and ('; held down at ' .. settings.holddown_after) or '')
  end
end

-- `server` did not hang (`how`: it answered, or failed at once): its breaker closes, and
-- the end of a hold-down is said once, as its start was.
local function close_breaker(task, server, how)
  local breaker = breakers[server]
  breakers[server] = nil
  if breaker and breaker.held_until then
    rspamd_logger.infox(task, '%s: %s no longer hangs (%s): hold-down over', N, server, how)
  end
end

local function rdns_scorer_check(task)
  if lua_util.is_skip_local_or_authed(task, skip_conf) then
    lua_util.debugm(N, task, 'skipped: local client or authenticated user')
    return
  end
  local ip = task:get_from_ip()
  if not (ip and ip:is_valid()) then
    lua_util.debugm(N, task, 'skipped: no client IP')
    return
  end

  if not upstreams then
    fail_open(task, 'servers did not parse or resolve when rspamd loaded its config: ' ..
        servers_text(), '-')
    return
  end

  local body = ucl.to_format(build_request(task, ip), 'msgpack')
  local headers = { ['Content-Type'] = 'application/msgpack', Accept = 'application/json' }
  if settings.token ~= '' then
    headers['Authorization'] = 'Bearer ' .. settings.token
  end
  local deadline = rspamd_util.get_ticks() + settings.timeout
  local tried = {} -- address -> true; held ones too, so no attempt goes there
  local before = {} -- for fail_open: the held servers, then each failed attempt
  pass_over_held(tried, before)
  local send

  -- After a failed attempt: the next address, or fail open with `reason`. `final`:
  -- the attempt timed out or got a 4xx no other instance would answer otherwise. Not
  -- read from `reason`, which holds the service's own words after an error status
  -- ("HTTP 503: upstream timeout").
  local function retry_or_fail(reason, server, final)
    local left = deadline - rspamd_util.get_ticks()
    -- Another address may answer, but only within the same budget and never after
    -- a timeout (the budget is gone) or a final 4xx (every instance says the same).
    if left > 0.05 and not final then
      pass_over_held(tried, before) -- held down, or probed, by another scan meanwhile
      local upstream, next_server = next_target(tried, true)
      if upstream then
        lua_util.debugm(N, task, 'retrying %s after %s from %s', next_server, reason, server)
        table.insert(before, string.format('%s: %s', server, reason))
        local done, err = pcall(send, upstream, next_server)
        if not done then
          fail_open(task, 'plugin error: ' .. tostring(err), next_server, before)
        end
        return
      end
    end
    fail_open(task, reason, server, before)
  end

  send = function(upstream, server)
    tried[server] = true
    local sent_at = rspamd_util.get_ticks()
    local budget = deadline - sent_at
    local breaker = breakers[server]
    if breaker and breaker.held_until then
      breaker.probe = sent_at -- its hold-down is over (pass_over_held): the probe
    end

    local function on_reply(err, code, reply_body)
      if err then
        local timed_out = tostring(err):find('timeout', 1, true) ~= nil
        -- A timeout says the server is hung only when it had (nearly) the whole budget:
        -- a retry after a late failure elsewhere gets what is left, and running out of
        -- that says nothing about a server that may answer every other scan at once.
        local hung = timed_out and budget >= 0.9 * settings.timeout
        if hung or not timed_out then
          -- This address: rspamd's next get_addr() then prefers the server's others.
          upstream:fail(true, tostring(err))
        end
        if hung then
          count_hang(task, server, sent_at)
        elseif timed_out then
          probe_over(server, sent_at) -- out of another attempt's leftover time: says nothing
        else
          close_breaker(task, server, tostring(err)) -- refused, reset: quick, not hung
        end
        retry_or_fail(tostring(err), server, timed_out)
        return
      elseif code ~= 200 then
        local reason = string.format('HTTP %s', code)
        local said = error_words(parse_body(reply_body))
        if said then
          reason = reason .. ': ' .. said
        end
        local client_error = code >= 400 and code < 500
        if not client_error then -- a 4xx: the instance is up (even one of RETRIED_4XX)
          upstream:fail(false, reason)
        end
        close_breaker(task, server, reason) -- it answers
        retry_or_fail(reason, server, client_error and not RETRIED_4XX[code])
        return
      end
      close_breaker(task, server, 'HTTP 200')
      upstream:ok()
      -- Even a bug of ours while reading the reply must not cost the message anything.
      local done, bad = pcall(apply_reply, task, reply_body)
      if not done then
        fail_open(task, 'error reading reply: ' .. tostring(bad), server, before)
      elseif bad then
        fail_open(task, bad, server, before)
      end
    end

    local sent = rspamd_http.request({
      task = task,
      url = string.format('http://%s%s', server, settings.path),
      body = body,
      headers = headers,
      timeout = math.max(budget, 0.01),
      keepalive = settings.keepalive,
      max_size = MAX_REPLY_BYTES,
      callback = on_reply,
    })
    if not sent then
      -- rspamd could not even start connecting (no route: an IPv6 address on a host
      -- without IPv6; no file descriptor left), and calls no callback: this address
      -- failed as a refused one does, and another may answer.
      upstream:fail(true, 'cannot send request')
      close_breaker(task, server, 'cannot send request')
      retry_or_fail('cannot send request', server, false)
    end
  end

  local upstream, server = next_target(tried, false, ip:to_string())
  if not upstream then
    -- Every server held down: each says so (the first is the reason, as with one).
    local held = #before > 0
    local reason = table.remove(before, 1) or ('no server to ask in ' .. servers_text())
    fail_open(task, reason, '-', before, held)
    return
  end
  send(upstream, server)
end

-- The registered callback: a bug of ours fails open like an unreachable service.
local function rdns_scorer_callback(task)
  local done, err = pcall(rdns_scorer_check, task)
  if not done then
    fail_open(task, 'plugin error: ' .. tostring(err), '-')
  end
end

-- Configuration
local opts = rspamd_config:get_all_opt(N)
if not opts then
  return -- no rdns_scorer section: rspamd disables the module anyway
end
-- A key the module does not know is more often a typo ("server" for "servers") than
-- not, and the module would go on with the default: said at load, not fatal. rspamd
-- itself reads "enabled" and "disabled" in every module's section.
local names = {}
for name in pairs(settings) do
  table.insert(names, name)
end
table.sort(names)
local known = { enabled = true, disabled = true }
for _, name in ipairs(names) do
  known[name] = true
end
for key in pairs(opts) do
  if not known[key] then
    rspamd_logger.warnx(rspamd_config, '%s: unknown setting %s, ignored (the settings are %s)',
        N, key, table.concat(names, ', '))
  end
end
settings = lua_util.override_defaults(settings, opts)

-- A quoted value ("500ms", "false") reaches the plugin as a string. Read it as UCL
-- reads the same value unquoted: "500ms" is 0.5 s (lua_util.parse_time_interval
-- reads 500 minutes) and "false" is false (every string is true in Lua).
local function as_unquoted(value)
  if type(value) ~= 'string' or not value:match('^%s*[%w%.]+%s*$') then
    return value
  end
  local parser = ucl.parser()
  if not parser:parse_string('value = ' .. value .. ';') then
    return value
  end
  local parsed = parser:get_object().value
  if parsed == nil then
    return value
  end
  return parsed
end

local function config_error(fmt, ...)
  rspamd_logger.errx(rspamd_config, '%s: ' .. fmt, N, ...)
  lua_util.disable_module(N, 'config')
end

-- The settings read as UCL reads them unquoted, and what each must be: anything else
-- is a config error that disables the module.
local CHECKED = {
  { 'timeout', 'a positive time', function(v) return type(v) == 'number' and v > 0 end },
  { 'holddown', 'a time of 0 or more', function(v) return type(v) == 'number' and v >= 0 end },
  { 'holddown_after', 'a whole number of 1 or more',
    function(v) return type(v) == 'number' and v >= 1 and v == math.floor(v) end },
  { 'check_local', 'true or false', function(v) return type(v) == 'boolean' end },
  { 'check_authed', 'true or false', function(v) return type(v) == 'boolean' end },
  { 'keepalive', 'true or false', function(v) return type(v) == 'boolean' end },
}
for _, entry in ipairs(CHECKED) do
  local key, expected, valid = entry[1], entry[2], entry[3]
  settings[key] = as_unquoted(settings[key])
  if not valid(settings[key]) then
    config_error('%s must be %s, got %s', key, expected, opts[key])
    return
  end
end
-- token, path and group are one text each, servers one or a list of them. A list
-- where one text belongs (a key set twice, in the section or in two sections of that
-- name, makes one) is a config error too: tostring() and register_symbol raised on it,
-- a Lua error that left the module unloaded with a traceback. Not shown: the token.
local function is_text(v) return type(v) == 'string' or type(v) == 'number' end
local function kind(v)
  return type(v) == 'table' and 'a list or section (is the key set twice?)' or tostring(v)
end
for _, key in ipairs({ 'token', 'path', 'group' }) do
  if not is_text(settings[key]) then
    config_error('%s must be one text, got %s', key, kind(settings[key]))
    return
  end
  settings[key] = tostring(settings[key])
end
-- The service takes only an RFC 6750 bearer token (BEARER_TOKEN in scorer/config.py), so
-- any other can never be its token; sent as it is, a line break in it ended the
-- Authorization header and made the rest of it another header of every request. Not
-- shown either.
if settings.token ~= '' and not settings.token:match('^[A-Za-z0-9%-%._~%+/]+=*$') then
  config_error('token must be a bearer token: only letters, digits and -._~+/ (then = ' ..
      'padding), as the service takes; got one that is not (not shown)')
  return
end
-- RFC 3986 sections 3.3 and 3.4: a path (and a query after "?") is unreserved
-- characters, sub-delims, ":", "@", "/", "?" and %-escapes. Anything else (a space, a
-- quote) made every request fail before it was sent ("cannot send request", read as no
-- route) and the server be marked failed.
if not settings.path:match("^[%w%-%._~!%$&'%(%)%*%+,;=:@/%?%%]+$") then
  config_error('path must be a URL path (RFC 3986: letters, digits and ' ..
      '-._~!$&\'()*+,;=:@/?%%), got %s', settings.path)
  return
end
if type(settings.servers) == 'table' then
  for _, item in pairs(settings.servers) do
    if not is_text(item) then
      config_error('servers must be "host:port" or a list of them, got a list holding %s',
          kind(item))
      return
    end
  end
  -- A section (servers { a = "x"; }) has keys where a list has places.
  local count = 0
  for _ in pairs(settings.servers) do
    count = count + 1
  end
  if count ~= #settings.servers then
    config_error('servers must be "host:port" or a list of them, got a section')
    return
  end
elseif not is_text(settings.servers) then
  config_error('servers must be "host:port" or a list of them, got %s', kind(settings.servers))
  return
end
-- An IPv6 address written without brackets: rspamd reads "::1" as two addresses with
-- port 0, and "2001:db8::5:11340" cannot say where the address ends and the port starts.
local function unbracketed_ipv6(text)
  if text:find('[', 1, true) then
    return false
  end
  for _, candidate in ipairs({ text, text:match('^(.*):%d+$') }) do
    local _, colons = candidate:gsub(':', '')
    -- Version 6: rspamd reads "127.0.0.1:11340:10" (a priority) as 127.0.0.1.
    local ip = colons >= 2 and rspamd_ip.from_string(candidate)
    if ip and ip:is_valid() and ip:get_version() == 6 then
      return true
    end
  end
  return false
end
-- Whether what follows the host ("name:" or "[v6]:") is a port, then maybe rspamd's
-- ":priority"; true without one. Text of another shape ("[::1") is left to rspamd,
-- which cannot read it: such an entry fails open visibly, as a name that does not
-- resolve.
local function host_port(text)
  local tail = text:match('^%[[^%[%]]*%]:(.*)$') or text:match('^[^:%[%]]+:(.*)$')
  return tail == nil or tail:match('^%d+$') ~= nil or tail:match('^%d+:%d+$') ~= nil
end
local entries, written_rotation = server_entries()
if written_rotation == 'sequential' then
  -- rspamd 3.4 reads "sequential:" as a host of that name; later versions give the
  -- servers one per call in order, then none: no rotation for one call per message.
  config_error('servers: the rotation sequential: is not one the module takes (it ' ..
      'takes %s; master-slave: asks the first server, the others only when it is ' ..
      'down), got %s', ROTATION_NAMES, servers_text())
  return
end
rotation = written_rotation or rotation
if #entries == 0 then
  config_error('servers names no server: give one "host:port" or a list of them')
  return
end
for index, entry in ipairs(entries) do
  local port, text = entry[2], entry[4]
  local prefix = text:match('^(%a[%w%-]*):')
  if text:lower():find('^service=') then
    -- rspamd's SRV form: an upstream with no address until rspamd resolves it, whose
    -- get_addr() crashed rspamd 3.4 and 3.12 at load (SIGSEGV); and the plugin asks
    -- A and AAAA alone for a late name.
    config_error('servers: rspamd\'s SRV form (service=NAME+DOMAIN) is not one the ' ..
        'module takes; write "host:port", got %s', text)
    return
  elseif text:find('/', 1, true) then
    -- A URL ("http://host:port/v1/check", as the SpamAssassin plugin's rdns_scorer_url
    -- takes) or a path after the port: rspamd read it as a host name, which never
    -- resolves, and every scan failed open "until rspamd resolves them" for ever.
    config_error('servers: write "host:port", not a URL (the path goes in path), got %s', text)
    return
  elseif unbracketed_ipv6(text) then
    config_error('servers: write an IPv6 address in brackets, then its port ' ..
        '("[::1]:%s"), got %s', DEFAULT_PORT, text)
    return
  elseif not host_port(text) and prefix and is_rotation(prefix:lower()) then
    -- rspamd reads a rotation at the start of the text alone: here it is a host name.
    config_error('servers: a rotation (%s:) goes before the first server only, got %s',
        prefix, text)
    return
  elseif not host_port(text) and prefix and index == 1 then
    -- A rotation rspamd does not know ("failover:10.0.0.5:11340"): rspamd cannot parse
    -- it, and every message failed open while the resolver was asked for "failover".
    config_error('servers: unknown rotation %s: (rspamd\'s are %s) or no "host:port", ' ..
        'got %s', prefix, ROTATION_NAMES, text)
    return
  elseif not host_port(text) then
    config_error('servers: write "host:port", then maybe rspamd\'s ":priority", got %s', text)
    return
  elseif port < 1 or port > 65535 then
    -- rspamd would take the port modulo 65536 (70000 is 4464) and port 0 as it is.
    config_error('servers: the port must be 1-65535, got %s', text)
    return
  end
end
-- rspamd's task_timeout: the options section's (8 s by default), unless a worker
-- section sets its own (worker "normal" { task_timeout = 2s; }), which wins for the
-- scans in that worker. The shortest of them: the plugin's wait must fit in each.
local function shortest_task_timeout()
  local shortest
  -- A key written twice inside one block (task_timeout twice in a section, normal { }
  -- twice in one worker { } block) reaches Lua as a list of its values, and rspamd reads
  -- the first alone: the later task_timeout is ignored, the later normal { } starts no
  -- worker at all.
  local function first(value)
    if type(value) == 'table' and value[1] ~= nil then
      return value[1]
    end
    return value
  end
  local function consider(value)
    value = as_unquoted(first(value))
    if type(value) == 'number' and value > 0 and (not shortest or value < shortest) then
      shortest = value
    end
  end
  consider((rspamd_config:get_all_opt('options') or {}).task_timeout)
  -- Every worker block as written: get_all_opt('worker') merges them and keeps the
  -- last of each type, but two worker "normal" blocks (two sockets) are two workers,
  -- each with its own task_timeout. A block written once is a table, twice a list.
  local blocks = (rspamd_config:get_ucl() or {}).worker or {}
  for _, block in ipairs(blocks[1] and blocks or { blocks }) do
    if type(block) == 'table' then
      consider(block.task_timeout) -- the old form: worker { type = "normal"; ... }
      for _, section in pairs(block) do
        section = first(section)
        if type(section) == 'table' then
          consider(section.task_timeout)
        end
      end
    end
  end
  return shortest or 8.0
end

-- At or above rspamd's task_timeout, a hung service would time out the whole scan
-- (every other module's checks cut short): keep the plugin's wait below it.
local task_timeout = shortest_task_timeout()
if settings.timeout >= task_timeout then
  local fallback = math.min(1.0, task_timeout / 2)
  rspamd_logger.errx(rspamd_config,
      '%s: timeout %s s is not below task_timeout (%s s): a hung service would time out ' ..
      'the whole scan; using %s s', N, settings.timeout, task_timeout, fallback)
  settings.timeout = fallback
end
-- "v1/check" would make every request fail ("cannot send request"), unnoticed:
-- RL_SCORER_FAIL weighs nothing.
if settings.path:sub(1, 1) ~= '/' then
  rspamd_logger.warnx(rspamd_config, '%s: path %s does not start with "/"; using /%s', N,
      settings.path, settings.path)
  settings.path = '/' .. settings.path
end

-- Not fatal when it fails: the module stays and every scan fails open visibly.
upstreams = build_upstreams()
if upstreams then
  n_upstreams = #upstreams:all_upstreams()
end
if #late_entries > 0 then
  rspamd_config:add_on_load(function(_, ev_base, worker)
    if worker:is_scanner() then
      -- A first round at once (the container may be up by now), then one per
      -- RESOLVE_RETRY while any entry is still missing.
      rspamd_config:add_periodic(ev_base, 0.0, function(cfg)
        if #late_entries == 0 then
          return false -- every entry resolved: no more rounds
        end
        resolve_late(cfg)
        return RESOLVE_RETRY
      end, false) -- no jitter: rspamd's would make it 10-20 s
    end
  end)
end

-- As lua_util.config_check_local_or_authed (and hfilter): either key in this section
-- decides both; else the options section does. Not the helper alone when the section
-- has them: it skips a quoted value ("false") and would take options' instead.
if opts.check_local ~= nil or opts.check_authed ~= nil then
  skip_conf = { settings.check_local, settings.check_authed }
else
  skip_conf = lua_util.config_check_local_or_authed(rspamd_config, N, false, false)
end

-- All symbols are registered here, in one place.
local check_id = rspamd_config:register_symbol({
  name = CHECK_SYMBOL,
  type = 'callback',
  callback = rdns_scorer_callback,
  flags = 'empty,nostat',
  group = settings.group,
  augmentations = { string.format('timeout=%f', settings.timeout) },
})
for _, entry in ipairs(SYMBOLS) do
  local name, family, description = entry[1], entry[2], entry[3]
  rspamd_config:register_symbol({
    name = name,
    type = 'virtual',
    parent = check_id,
    flags = 'nostat',
    group = settings.group,
    -- Service symbols: weight 1.0 x the service's score. Plugin symbols score nothing.
    score = family == 'plugin' and 0.0 or 1.0,
    description = description,
  })
end

rspamd_logger.infox(rspamd_config, '%s: enabled; %s server(s), timeout %s s, check_local=%s, ' ..
    'check_authed=%s, rotation %s', N, n_upstreams, settings.timeout, skip_conf[1], skip_conf[2],
    rotation)

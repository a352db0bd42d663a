-- wrk script of the PHP farm bench (bench/farm.sh): every request carries the cookies of one of
-- the sessions bench/farm-sessions.mjs created (a file of "PHPSESSID=...; route=..." lines, given
-- after --), in turn, each thread starting at its own place, so the users' sessions are read and
-- written as a site's logged-in users do.
local sessions = {}
local next_session = 0

function init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then sessions[#sessions + 1] = line end
  end
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
  next_session = math.random(#sessions)
end

function request()
  next_session = next_session % #sessions + 1
  return wrk.format(nil, nil, { ["Cookie"] = sessions[next_session] })
end

-- wrk script for the read-by-id benchmark: GET [base]/[Type]/[id] for targets drawn at random
-- from a file written by `bench load --targets-out` (one `Type/id` a line).
-- Usage: wrk -s read.lua http://host:port -- TARGETS_FILE BASE_PATH
local paths = {}
local prefix = "/fhir/"

function init(args)
  prefix = (args[2] or "/fhir") .. "/"
  prefix = prefix:gsub("//+", "/")
  for line in io.lines(args[1]) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  -- Each wrk thread gets its own sequence.
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000003))
end

function request()
  return wrk.format("GET", prefix .. paths[math.random(#paths)], { ["Accept"] = "application/fhir+json" })
end

-- No response() hook: wrk counts non-2xx answers itself, and a hook would make it parse every body.

-- Answers any server can send that must never bring the process down.
local Simulator = require "helpers.simulator"

describe("a hostile server", function()
  local sim
  Simulator.for_each_spec({}, function(ctx) sim = ctx.sim end)

  -- libcurl 7.82 to 8.0 free memory twice when an easy handle that served a
  -- transfer meets an answer whose first header line is folded (curl issue
  -- 11101): kling must not give such a handle a second transfer.
  it("cannot crash the process with a folded first header line, from any host", function()
    local lua = os.getenv("KLING_LUA") or "lua5.4"
    local p = io.popen(("KLING_SIM_URL=%s %s spec/helpers/folded_header_child.lua 2>&1; echo \"exit $?\"")
      :format(sim.url, lua))
    local out = p:read("*a")
    p:close()
    assert.truthy(out:find("survived\nexit 0", 1, true), out)
  end)
end)

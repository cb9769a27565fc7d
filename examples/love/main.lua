-- LOVE: a frame never waits for the network. love.update steps the client with
-- max_wait = 0; the job's callback runs inside that step when the video is ready.
local kling = require "kling"

local client, status = nil, "starting"

function love.load()
  local new_err
  client, new_err = kling.new()
  if not client then error(tostring(new_err)) end
  client:spawn(function()
    local result, err = client:motion({
      image_url = "https://example.com/hero.png", video_url = "https://example.com/dance.mp4",
      character_orientation = "image", mode = "std",
      on_status = function(task) status = task.state end,
    })
    status = result and ("done: " .. result.video_url) or ("failed: " .. tostring(err))
  end)
end

function love.update()
  client:step(0) -- returns at once
end

function love.draw()
  love.graphics.print("Kling: " .. status, 10, 10)
end

function love.quit()
  client:close()
end

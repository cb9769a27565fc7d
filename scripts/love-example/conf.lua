-- Headless harness for examples/love/main.lua (make example-love, under Xvfb).
function love.conf(t)
  t.modules.audio = false
  t.modules.sound = false
  t.window.width, t.window.height = 320, 40
  t.window.title = "kling example"
end

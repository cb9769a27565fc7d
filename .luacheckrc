std = "max"
max_line_length = 120
files["spec/**/*.lua"] = { std = "+busted" }
files["examples/love/*.lua"] = { globals = { "love" } }
files["examples/nvim/*.lua"] = { read_globals = { "vim" } }
files["scripts/nvim-example.lua"] = { globals = { "vim" } }
files["scripts/love-example/*.lua"] = { globals = { "love" } }
exclude_files = { "lua/kling/simulator/sample_video.lua", "build/**" }
files["lua/kling/loop/ngx.lua"] = { read_globals = { "ngx" } }
files["examples/openresty/*.lua"] = { globals = { "ngx" } }

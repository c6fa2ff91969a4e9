-- luacheck config for the rspamd plugin in lua/ (`luacheck --no-color -q lua`).
std = "luajit"
-- Globals rspamd provides to plugins.
read_globals = {
  "rspamd_config",
  "confighelp",
}
max_line_length = 120

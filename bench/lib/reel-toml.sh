# Sourced by the benchmark scripts: the reel.toml of a scratch reeld.
# reel_toml WORK PROVIDER_URL prints a config with its spool, output, state and socket under WORK, the sandbox
# provider at PROVIDER_URL (a dead port when nothing is submitted) and warnings-only logging; callers append
# what they need.
reel_toml() {
  cat <<TOML
[paths]
spool = "$1/spool"
output = "$1/output"
state = "$1/state"
socket = "$1/reel.sock"
[provider]
kind = "sandbox"
base_url = "$2"
[log]
level = "warning"
TOML
}

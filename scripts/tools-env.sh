# Sourced by scripts/tools.sh and scripts/check-deploy.sh: strict mode, the repository root
# as working directory, a `log` naming the script ($log_tag), and where the checking tools
# live: $tools (.tools/, or TROUPE_TOOLS) and its virtualenv $venv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[1]}")/.."

log() { printf '[%s] %s\n' "$log_tag" "$*"; }

tools=${TROUPE_TOOLS:-$PWD/.tools}
venv="$tools/venv"

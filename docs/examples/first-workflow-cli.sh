# The same with the trellis command (run from the repository root).
# It reads TRELLIS_URL and TRELLIS_TOKEN from the environment.
set -euo pipefail
trellis workflow validate docs/examples/shout.yaml   # the plan, or each problem with its path
trellis workflow push docs/examples/shout.yaml       # version 1, or unchanged
trellis run start shout --input name=ada --follow   # exit status 0 when the run COMPLETED
trellis run list --workflow shout --limit 3

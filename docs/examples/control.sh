# Pause, resume, cancel and retry a run; an illegal action answers 409 with `current`.
set -euo pipefail
H="Authorization: Token $TRELLIS_TOKEN"
curl -sS --fail-with-body -H "$H" -H 'Content-Type: application/yaml' \
  "$TRELLIS_URL/api/v1/workflows/" --data-binary @- <<'YAML'
name: hold
dag:
  nodes:
    - {id: gate, handler: wait_for_event}
    - {id: done, handler: output, dependencies: [gate]}
YAML
echo
id=$(trellis --json run start hold | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
trellis run pause "$id"     # RUNNING -> PAUSED: running nodes finish, newly ready ones wait
trellis run resume "$id"    # PAUSED -> RUNNING: the held nodes are sent
trellis run cancel "$id"    # every unfinished node CANCELLED, child runs cancelled
trellis run retry "$id"     # the failed and cancelled nodes run again
trellis run cancel "$id"

# Resuming a cancelled run is illegal: 409, and `trellis` exits with status 2.
curl -sS -H "$H" -X POST "$TRELLIS_URL/api/v1/runs/$id/resume/"
echo
trellis run resume "$id" || echo "exit status $?"

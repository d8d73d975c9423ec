# The API with curl: create a workflow, start a run and read it.
# TRELLIS_URL is e.g. http://127.0.0.1:8000 and TRELLIS_TOKEN the token ./bin/up printed.
set -euo pipefail
H="Authorization: Token $TRELLIS_TOKEN"

# Create the workflow (a new name is version 1; a changed spec under the same name is
# version 2; an identical spec changes nothing). The body may be JSON or YAML.
curl -sS --fail-with-body -H "$H" -H 'Content-Type: application/json' \
  "$TRELLIS_URL/api/v1/workflows/" -d '{
  "name": "shout",
  "inputs": {"type": "object", "properties": {"name": {"type": "string", "default": "ada"}}, "required": ["name"]},
  "dag": {"nodes": [
    {"id": "start", "handler": "input"},
    {"id": "loud", "handler": "output", "dependencies": ["start"],
     "config": {"value": "{{ start.output.data.name | upper }}!"}}
  ]}
}'
echo

# Start a run; "wait": true answers when the run has finished (201 with the result)
# or after "timeout" seconds (202 with the run id).
run=$(curl -sS --fail-with-body -H "$H" -H 'Content-Type: application/json' \
  "$TRELLIS_URL/api/v1/runs/" -d '{"workflow": "shout", "inputs": {"name": "ada"}, "wait": true}')
echo "$run"
id=$(printf '%s' "$run" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')

curl -sS --fail-with-body -H "$H" "$TRELLIS_URL/api/v1/runs/$id/"          # nodes, states, timings
echo
curl -sS --fail-with-body -H "$H" "$TRELLIS_URL/api/v1/runs/$id/results/"  # the result: "ADA!"
echo
curl -sS --fail-with-body -H "$H" "$TRELLIS_URL/api/v1/runs/$id/events/"   # every transition
echo

# Node actions: mark, clear and skip one node by hand. Each is audited (`by` in its events)
# and legal only where the state table allows it (409 with `current` otherwise).
set -euo pipefail
H="Authorization: Token $TRELLIS_TOKEN"
curl -sS --fail-with-body -H "$H" -H 'Content-Type: application/yaml' \
  "$TRELLIS_URL/api/v1/workflows/" --data-binary @- <<'YAML'
name: by-hand
dag:
  nodes:
    - {id: gate, handler: wait_for_event}
    - {id: report, handler: output, dependencies: [gate], config: {value: "{{ gate.output }}"}}
YAML
echo
id=$(trellis --json run start by-hand | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')

# `report` is PENDING behind `gate`: mark it COMPLETED with an output, as if it had run.
trellis run mark "$id" report --output '{"note": "written by hand"}'
for _ in $(seq 50); do                              # until gate is WAITING
  trellis --json run show "$id" | grep -q '"WAITING"' && break
  sleep 0.2
done
trellis run send-event "$id" gate --data '{"ok": true}'
trellis run events "$id" --follow > /dev/null       # the run ends COMPLETED

# Clear `report`: it runs again with gate's real output (the run goes back to RUNNING).
curl -sS --fail-with-body -H "$H" -H 'Content-Type: application/json' \
  -X POST "$TRELLIS_URL/api/v1/runs/$id/nodes/report/clear/" -d '{"downstream": true}' \
  | python3 -c 'import json, sys; print("run", json.load(sys.stdin)["status"])'
trellis run events "$id" --follow > /dev/null
trellis --json run show "$id" | python3 -c '
import json, sys
nodes = {n["id"]: n for n in json.load(sys.stdin)["nodes"]}
assert nodes["report"]["output"] == {"ok": True}, nodes["report"]'

# Skipping a COMPLETED node is illegal: 409 with `current`, and `trellis` exits with 2.
curl -sS -H "$H" -X POST "$TRELLIS_URL/api/v1/runs/$id/nodes/report/skip/"
echo
trellis run skip "$id" report || echo "exit status $?"

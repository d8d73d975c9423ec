# Human in the loop, the other answer: a person rejects what a wait_for_event node asks for.
# The node fails with the reason given (error type "Rejected", never retried), and the
# trigger rules of the nodes below it decide what follows.
set -euo pipefail
H="Authorization: Token $TRELLIS_TOKEN"

curl -sS --fail-with-body -H "$H" -H 'Content-Type: application/yaml' \
  "$TRELLIS_URL/api/v1/workflows/" --data-binary @- <<'YAML'
name: refund-review
inputs: {type: object, properties: {amount: {type: number, default: 120}}}
dag:
  nodes:
    - id: approve
      handler: wait_for_event
      config:
        prompt: |
          ## Refund request
          Approve a refund of **{{ inputs.amount }} EUR**?
        schema: {type: object, properties: {approved: {type: boolean}}, required: [approved]}
    - id: refund                            # all_success (the default): only after an approval
      handler: output
      dependencies: [approve]
      config: {value: refunded}
    - id: notify                            # all_done: runs whatever the person answered
      handler: output
      dependencies: [approve]
      trigger_rule: all_done
      config: {value: "customer notified"}
YAML
echo

id=$(trellis --json run start refund-review | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
for _ in $(seq 50); do                            # until the node is WAITING (a second or so)
  trellis --json run show "$id" | grep -q '"WAITING"' && break
  sleep 0.2
done
trellis run list --needs-input                    # RUNNING with a WAITING node
curl -sS --fail-with-body -H "$H" "$TRELLIS_URL/api/v1/runs/?needs_input=true" >/dev/null

trellis run reject "$id" approve --reason "duplicate of an earlier request"
# the same with curl:
#   curl -H "$H" -H 'Content-Type: application/json' "$TRELLIS_URL/api/v1/runs/$id/events/" \
#     -d '{"node": "approve", "reject": "duplicate of an earlier request"}'

trellis run events "$id" --follow || true         # exits 1: the run ends FAILED
trellis --json run show "$id" | python3 -c '
import json, sys
run = json.load(sys.stdin)
nodes = {node["id"]: node for node in run["nodes"]}
print(run["status"], {name: node["state"] for name, node in nodes.items()})
print(nodes["approve"]["error"])
assert run["status"] == "FAILED" and nodes["approve"]["error"]["type"] == "Rejected"
assert nodes["refund"]["state"] == "UPSTREAM_FAILED" and nodes["notify"]["state"] == "COMPLETED"
'

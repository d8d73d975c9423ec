# Human in the loop: a run waits (state WAITING, holding no worker) until someone posts
# data for its wait_for_event node; the data becomes the node's output.
set -euo pipefail
H="Authorization: Token $TRELLIS_TOKEN"

# A YAML body works as well as JSON.
curl -sS --fail-with-body -H "$H" -H 'Content-Type: application/yaml' \
  "$TRELLIS_URL/api/v1/workflows/" --data-binary @- <<'YAML'
name: approval
inputs: {type: object, properties: {amount: {type: number, default: 120}}}
dag:
  nodes:
    - id: approve
      handler: wait_for_event
      config:
        prompt: "Approve a refund of {{ inputs.amount }}?"
        timeout: 3600                       # fail the node when nothing arrives in an hour
        schema:                             # posted data must match (else 400)
          type: object
          properties: {approved: {type: boolean}, by: {type: string}}
          required: [approved]
    - id: decision
      handler: output
      dependencies: [approve]
      config: {value: "{{ 'refunded' if approve.output.approved else 'refused' }}"}
YAML
echo

id=$(trellis --json run start approval | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
for _ in $(seq 50); do                            # until the node is WAITING (a second or so)
  trellis --json run show "$id" | grep -q '"WAITING"' && break
  sleep 0.2
done
trellis run show "$id"                            # approve: WAITING
trellis run send-event "$id" approve --data '{"approved": true, "by": "ada"}'
# the same with curl:
#   curl -H "$H" -H 'Content-Type: application/json' "$TRELLIS_URL/api/v1/runs/$id/events/" \
#     -d '{"node": "approve", "data": {"approved": true, "by": "ada"}}'
trellis run events "$id" --follow                 # ends when the run has finished
curl -sS --fail-with-body -H "$H" "$TRELLIS_URL/api/v1/runs/$id/results/"
echo

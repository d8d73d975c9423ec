# A seed-004 client: submit a document, trigger it, read its status and results.
set -euo pipefail
H="Authorization: Token $TRELLIS_TOKEN"
exec_id=$(curl -sS --fail-with-body -H "$H" -H 'Content-Type: application/json' \
  "$TRELLIS_URL/workflow" -d '{
  "name": "seed example",
  "dag": {"nodes": [
    {"id": "hello", "handler": "output", "config": {"value": "hi"}},
    {"id": "output", "handler": "output", "dependencies": ["hello"]}
  ]}
}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["execution_id"])')

# 202 {"execution_id", "status": "RUNNING", "warnings": []}; the optional body
# {node_id: {config keys}} is merged into those nodes' configs.
curl -sS --fail-with-body -H "$H" -H 'Content-Type: application/json' -X POST \
  "$TRELLIS_URL/workflow/trigger/$exec_id" -d '{"hello": {"value": "hello, seed"}}'
echo
for _ in $(seq 50); do                     # until the run has finished
  curl -sS --fail-with-body -H "$H" "$TRELLIS_URL/workflows/$exec_id" | grep -q '"completed": *true\|"status":"COMPLETED"\|"status":"FAILED"' && break
  sleep 0.2
done
curl -sS --fail-with-body -H "$H" "$TRELLIS_URL/workflows/$exec_id"; echo
curl -sS --fail-with-body -H "$H" "$TRELLIS_URL/workflows/$exec_id/results"; echo

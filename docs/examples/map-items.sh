# Map items: each item of a map node records its own state, duration and error as a
# `node.event`; the events API filters them by node and kind.
set -euo pipefail
H="Authorization: Token $TRELLIS_TOKEN"
curl -sS --fail-with-body -H "$H" -H 'Content-Type: application/yaml' \
  "$TRELLIS_URL/api/v1/workflows/" --data-binary @- <<'YAML'
name: tenths
dag:
  nodes:
    - {id: start, handler: input}
    - id: divide
      handler: output
      dependencies: [start]
      map: "{{ inputs.divisors }}"
      config: {value: "{{ 10 // item }}"}        # item 0 fails: division by zero
YAML
echo
id=$(trellis --json run start tenths --inputs-json '{"divisors": [1, 0, 5]}' \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
trellis run events "$id" --follow > /dev/null || true   # exit status 1: the run FAILED

curl -sS --fail-with-body -H "$H" \
  "$TRELLIS_URL/api/v1/runs/$id/events/?node=divide&kind=node.event" | python3 -c '
import json, sys
items = sorted((e["data"] for e in json.load(sys.stdin)["results"]), key=lambda d: d["map_item"])
for item in items:
    print(item["map_item"], item["state"], "%.3f s" % item["duration"], item.get("error", ""))
assert [item["state"] for item in items] == ["COMPLETED", "FAILED", "COMPLETED"], items
assert items[1]["error"].startswith("item 1: "), items[1]'

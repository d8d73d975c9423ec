# `params` and `overrides` in a run start.
#   params:    a JSON object stored on the run, read by templates as `params` and by
#              handlers as ctx.params; not checked against the `inputs` schema.
#   overrides: {node id: {config key: value}}, merged key by key into those nodes' configs
#              for this run only; an unknown node id or a config the handler refuses is a 400.
set -euo pipefail
H="Authorization: Token $TRELLIS_TOKEN"
curl -sS --fail-with-body -H "$H" -H 'Content-Type: application/yaml' \
  "$TRELLIS_URL/api/v1/workflows/" --data-binary @- <<'YAML'
name: label
inputs: {type: object, properties: {sku: {type: string, default: TEA-42}}}
dag:
  nodes:
    - {id: start, handler: input}
    - id: label
      handler: output
      dependencies: [start]
      config: {value: "{{ inputs.sku }} ({{ params.get('lang', 'en') }})"}
YAML
echo

# "TEA-42 (fr)": params reach the templates.
curl -sS --fail-with-body -H "$H" -H 'Content-Type: application/json' \
  "$TRELLIS_URL/api/v1/runs/" -d '{"workflow": "label", "params": {"lang": "fr"}, "wait": true}'
echo

# "sold out": this run's `label` node gets another config value.
curl -sS --fail-with-body -H "$H" -H 'Content-Type: application/json' \
  "$TRELLIS_URL/api/v1/runs/" \
  -d '{"workflow": "label", "overrides": {"label": {"value": "sold out"}}, "wait": true}'
echo

# An override for a node that does not exist is refused: 400 with the path.
curl -sS -H "$H" -H 'Content-Type: application/json' "$TRELLIS_URL/api/v1/runs/" \
  -d '{"workflow": "label", "overrides": {"nope": {"value": 1}}}'
echo

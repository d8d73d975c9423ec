# A `workflow` node starts a child run and completes with its result; a session holds JSON
# state that the runs started in it read as `session`.
set -euo pipefail
H="Authorization: Token $TRELLIS_TOKEN"
push() {
  curl -sS --fail-with-body -H "$H" -H 'Content-Type: application/yaml' \
    "$TRELLIS_URL/api/v1/workflows/" --data-binary @-
  echo
}

push <<'YAML'
name: greet
inputs: {type: object, properties: {name: {type: string, default: world}}}
dag:
  nodes:
    - {id: start, handler: input}
    - id: hello
      handler: output
      dependencies: [start]
      config: {value: "{{ session.greeting | default('Hello') }}, {{ inputs.name }}!"}
YAML

push <<'YAML'
name: greet-twice
dag:
  nodes:
    - id: ada
      handler: workflow
      config: {workflow: greet, inputs: {name: Ada}}
    - id: alan
      handler: workflow
      config: {workflow: greet, inputs: {name: Alan}}
    - id: both
      handler: output
      dependencies: [ada, alan]
      config: {value: ["{{ ada.output }}", "{{ alan.output }}"]}
YAML

# A session, its state changed with PATCH (merged; "replace": true replaces it).
session=$(curl -sS --fail-with-body -H "$H" -H 'Content-Type: application/json' \
  "$TRELLIS_URL/api/v1/sessions/" -d '{"state": {"greeting": "Hi"}}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
curl -sS --fail-with-body -H "$H" -H 'Content-Type: application/json' -X PATCH \
  "$TRELLIS_URL/api/v1/sessions/$session/" -d '{"state": {"greeting": "Good morning"}}'
echo

# The child runs share the parent's session: ["Good morning, Ada!", "Good morning, Alan!"]
curl -sS --fail-with-body -H "$H" -H 'Content-Type: application/json' \
  "$TRELLIS_URL/api/v1/runs/" \
  -d "{\"workflow\": \"greet-twice\", \"session\": \"$session\", \"wait\": true}"
echo

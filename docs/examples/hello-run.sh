# Start the example workflow `hello` (./bin/up loads it from examples/; push it here
# in case this server did not) and wait for its result.
set -euo pipefail
trellis workflow push examples/hello.json
curl -sS --fail-with-body -H "Authorization: Token $TRELLIS_TOKEN" \
  -H 'Content-Type: application/json' "$TRELLIS_URL/api/v1/runs/" \
  -d '{"workflow": "hello", "inputs": {"name": "you"}, "wait": true}'
echo

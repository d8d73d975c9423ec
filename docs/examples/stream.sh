# Follow a run's events from a shell: server-sent events. The stream ends after the run's
# final event (a finished run with nothing newer than ?after= answers 204).
set -euo pipefail
H="Authorization: Token $TRELLIS_TOKEN"
trellis workflow push examples/hello.json
id=$(trellis --json run start hello --input name=Ada | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
curl -sS -N --fail-with-body -H "$H" "$TRELLIS_URL/api/v1/runs/$id/stream/"

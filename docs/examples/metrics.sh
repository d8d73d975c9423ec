# Prometheus metrics: a staff user's token (or Authorization: Bearer $TRELLIS_METRICS_TOKEN).
set -euo pipefail
curl -sS --fail-with-body -H "Authorization: Token $TRELLIS_TOKEN" "$TRELLIS_URL/metrics" |
  grep -E '^trellis_(workers_alive|broker_up) '
# No credentials: 401 in the API's error shape.
curl -sS -o /dev/null -w '%{http_code}\n' "$TRELLIS_URL/metrics"

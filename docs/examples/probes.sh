# Liveness and readiness: no credentials needed.
set -euo pipefail
curl -sS --fail-with-body "$TRELLIS_URL/health"; echo   # {"status": "ok"}
curl -sS --fail-with-body "$TRELLIS_URL/ready"; echo    # database and Redis answer

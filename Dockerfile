# One image for every Trellis process (compose.yaml picks the command): web, worker, beat and
# the one-shot migrate.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=orchestration.settings \
    TRELLIS_DATA_DIR=/data

WORKDIR /app

# The pinned dependencies first, from pyproject.toml alone, so that a code change does not
# reinstall them.
COPY pyproject.toml ./
RUN python -c "import subprocess, sys, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
subprocess.check_call([sys.executable, '-m', 'pip', 'install', *deps])"

COPY . .
# Editable, so that the code runs from /app (settings find examples/ and the static files
# beside it) and `celery -A orchestration` / `daphne orchestration.asgi:application` import it.
RUN pip install --no-deps -e . \
    && useradd --system --uid 10001 --home-dir /app trellis \
    && mkdir -p /data && chown trellis /data

USER trellis
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "orchestration.asgi:application"]

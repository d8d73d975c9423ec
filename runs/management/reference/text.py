"""The sentences of the generated reference pages that the code does not hold.

:mod:`runs.management.reference` takes every name, type, default and limit from the code and
only the meaning from here. Each dict must cover exactly what the code has: a spec key, an
environment variable, an event kind, a template name or an exit status without a sentence
here (or a sentence here for something the code no longer has) stops the generator, so
``manage.py docs_reference --check`` fails until this file says what the new thing means.

Sentences may name the code's values as ``{NAME}`` fields (see ``engine.spec_facts``).
"""

from __future__ import annotations

# --------------------------------------------------------------------------- spec

SPEC_KEYS: dict[str, str] = {
    "name": "The workflow's name, at most {MAX_NAME_LENGTH} characters. A new name is version 1; "
    "a changed document under the same name is the next version; an identical one changes "
    "nothing.",
    "description": "Free text, shown in the dashboard.",
    "inputs": 'A JSON Schema (draft 2020-12) with `"type": "object"`; every run\'s inputs are '
    "checked against it when the run starts.",
    "defaults": "Node options for every node that does not set them: {DEFAULT_KEYS}.",
    "schedule": "A cron expression of 5 fields (minute hour day month weekday, digits and "
    "`* / , -`); beat starts a run at each match, its inputs the `inputs` schema's defaults.",
    "dag": "An object with one key, `nodes`: a non-empty list of at most {TRELLIS_MAX_NODES} "
    "nodes (`TRELLIS_MAX_NODES`).",
    "max_concurrent_runs": "Runs of this workflow that may be RUNNING at once; more wait PENDING "
    "(a `run.waiting` event) until one finishes. Unset: no limit.",
}

NODE_KEYS: dict[str, str] = {
    "id": "Unique in the workflow; matches `{NODE_ID_PATTERN}`; not one of the template names "
    "({RESERVED_NAMES}).",
    "handler": "A registered handler (see the handlers reference).",
    "dependencies": "Ids of the nodes that must finish first; no duplicates, no cycles.",
    "config": "The handler's settings, validated against its config schema at submit. "
    "Strings may be templates, rendered when the node runs.",
    "retries": "Extra attempts after a retryable failure, 0 to {MAX_RETRIES}.",
    "backoff": "Seconds before the first retry, doubled for each further one (with jitter, "
    "capped by `TRELLIS_MAX_BACKOFF`); 0 to {MAX_BACKOFF} seconds.",
    "timeout": "Seconds one attempt may take, above 0 and at most {TRELLIS_MAX_NODE_TIMEOUT} "
    "(`TRELLIS_MAX_NODE_TIMEOUT`).",
    "queue": "The Celery queue the node is sent to; matches `{QUEUE_PATTERN}`.",
    "when": "A template; when it renders false-y the node is SKIPPED.",
    "map": "A template that renders a list (at most {TRELLIS_MAX_MAP_ITEMS} items, "
    "`TRELLIS_MAX_MAP_ITEMS`): the node runs once per item with `item` and `index` in its "
    "config's scope, and its output is the list of results.",
    "trigger_rule": "When the node may run once its dependencies have finished: {TRIGGER_RULES}.",
    "description": "Free text, shown in the dashboard.",
}

# What a node key defaults to when it is left out, when that is not a knob.
NODE_KEY_DEFAULTS: dict[str, str] = {
    "dependencies": "`[]` (a root node)",
    "config": "`{}`",
    "when": "unset: always runs",
    "map": "unset: runs once",
    "description": '`""`',
}

# The names templates see (every one is reserved: no node may use it as its id).
TEMPLATE_NAMES: dict[str, str] = {
    "inputs": "the run's inputs",
    "params": "the run's `params` (set when it is started)",
    "run": "the run: `id`, `workflow`, `version`, …",
    "session": "the state of the run's session (when it has one)",
    "nodes": '`nodes["node-id"].output`, for ids that are not Python names',
    "item": "in the config of a node with `map`: the current item",
    "index": "in the config of a node with `map`: the current item's position",
    "secrets": "in node configs only: `secrets.NAME`, from `TRELLIS_SECRET_NAME` on the worker",
}

# --------------------------------------------------------------------------- settings

# Environment variables of the standalone stack that are not knobs (orchestration/settings.py,
# and the few that commands and the engine read themselves).
ENVIRONMENT: dict[str, str] = {
    "DEBUG": "Django's debug mode; with `false`, `SECRET_KEY` must be set.",
    "SECRET_KEY": "Django's secret key; unset: a development key, refused when `DEBUG` is false.",
    "ALLOWED_HOSTS": "Host names the web process answers (comma-separated).",
    "TRELLIS_EXTRA_APPS": "More Django apps to install (comma-separated), e.g. one with your "
    "`handlers.py` or `workflows.py`.",
    "DATABASE_URL": "The database, e.g. `postgres://user@host:5432/trellis`; unset: SQLite in "
    "the data dir.",
    "TRELLIS_PG_IDLE_IN_TRANSACTION": "PostgreSQL drops a session idle inside a transaction "
    "this many seconds (a worker cut off by a partition must not hold row locks); 0 turns it "
    "off.",
    "REDIS_URL": "Broker, chord results, cache and channel layer, e.g. "
    "`redis://127.0.0.1:6379/0`; unset: the embedded Valkey in the data dir.",
    "TRELLIS_CHANNEL_PREFIX": "Key prefix of the channel layer and the cache, to share a Redis.",
    "TRELLIS_REDIS_PREFIX": "Key prefix of the broker's and the results' keys, to share a Redis.",
    "TRELLIS_THROTTLE_ANON": "Requests an anonymous client may make, per `s`, `min`, `hour` or "
    "`day` (`60/min`), or `off`; beyond it, 429 with `Retry-After`.",
    "TRELLIS_THROTTLE_USER": "Requests each signed-in user may make, as for "
    "`TRELLIS_THROTTLE_ANON`.",
    "TRELLIS_SECURE_COOKIES": "Session and CSRF cookies only over HTTPS.",
    "CSRF_TRUSTED_ORIGINS": "Origins trusted for CSRF (comma-separated), e.g. "
    "`https://trellis.example.com` behind a TLS proxy.",
    "TRELLIS_SSL_REDIRECT": "Redirect HTTP to HTTPS (the probes are exempt).",
    "TRELLIS_HSTS_SECONDS": "`Strict-Transport-Security` max-age; 0: no header.",
    "TRELLIS_HSTS_INCLUDE_SUBDOMAINS": "Add `includeSubDomains` to the HSTS header.",
    "TRELLIS_HSTS_PRELOAD": "Add `preload` to the HSTS header.",
    "TRELLIS_BEHIND_PROXY": "Trust `X-Forwarded-Proto: https` from the proxy in front (only "
    "behind a proxy that strips it from clients).",
    "TRELLIS_LOG_LEVEL": "Level of the root logger.",
    "TRELLIS_ADMIN_PASSWORD": "Password `manage.py up` gives the first admin user; unset: a "
    "random one, printed.",
    "TRELLIS_SECRET_<NAME>": "The value of `{{ secrets.NAME }}` in node configs, read on the "
    "worker when the node runs.",
}

# --------------------------------------------------------------------------- events

# kind -> (meaning, {data field: meaning})
EVENTS: dict[str, tuple[str, dict[str, str]]] = {
    "run.status": (
        "The run changed status (also recorded when it is created, as PENDING).",
        {
            "status": "the new status",
            "from": "the status before",
            "by": "who paused, resumed, cancelled or retried it, or whose node action reopened it",
            "action": "the node action (`clear`, `mark`, `skip`) that reopened a finished run",
        },
    ),
    "run.waiting": (
        "A triggered run waits for a slot: its workflow's `max_concurrent_runs` are running.",
        {"max_concurrent_runs": "the workflow's limit"},
    ),
    "run.retry": (
        "An operator retried the run; its failed, cancelled and skipped nodes start again.",
        {"by": "who retried it", "nodes": "the node ids reset to PENDING"},
    ),
    "run.result": (
        "The run finished; its result (COMPLETED) or the error (FAILED).",
        {
            "status": "the final status",
            "result": "the run's result",
            "error": "why it failed, or null",
        },
    ),
    "node.status": (
        "A node changed state.",
        {
            "state": "the new state",
            "from": "the state before",
            "attempt": "the attempt number",
            "worker": "the worker that claimed it (RUNNING)",
            "error": "why it failed (FAILED, RETRYING)",
            "retry_in": "seconds until the next attempt (RETRYING)",
            "resent": "true when the reconciler sent a lost QUEUED node again",
            "by": "who sent the event that completed a waiting node, or took the node action",
            "event": "the data posted to a waiting node",
            "action": "the node action (`clear`, `mark`, `skip`) that made this change",
        },
    ),
    "node.action": (
        "A person cleared, marked or skipped the node (DESIGN §7).",
        {
            "action": "`clear`, `mark` or `skip`",
            "by": "who did it",
            "state": "the state it was set to (mark, skip)",
            "downstream": "whether the nodes below it were cleared too (clear)",
            "nodes": "the node ids reset to PENDING",
        },
    ),
    "node.event": (
        "Something a node reports that is not a state: the child run a `workflow` node "
        "started, the outcome of one item of a `map` node, or what a handler emits.",
        {
            "child_run": "the child run's id",
            "map_item": "(a map item) the item's index in the list; present only on item events",
            "state": "(a map item) `COMPLETED` or `FAILED`",
            "attempt": "(a map item) the map node's attempt the item ran in",
            "started_at": "(a map item) when the item started (ISO 8601)",
            "finished_at": "(a map item) when it finished (ISO 8601)",
            "duration": "(a map item) seconds it took",
            "error": "(a failed map item) the message, `item <index>: …`",
            "error_type": "(a failed map item) the error's type, e.g. `HandlerError`",
            "clock": "(`manage.py bench`) the wall clock",
            "index": "(`manage.py bench`) a sequence number",
        },
    ),
    "node.log": (
        "A line a handler logged (`ctx.log`), or that its code logged with `logging` or printed"
        " while its node ran.",
        {
            "message": "the line",
            "level": "(logged or printed) the level, e.g. `INFO`",
            "logger": "(logged or printed) the logger's name, or `stdout` / `stderr`",
            "attempt": "(logged or printed) the attempt that wrote it",
            "source": "`logging`, `print`, or `capture` (the note on dropped lines)",
        },
    ),
    "node.markdown": (
        "Markdown for the dashboard's node panel (`ctx.markdown`), e.g. a waiting node's prompt.",
        {"text": "the markdown"},
    ),
    "node.progress": (
        "How far a node is (`ctx.progress`).",
        {"fraction": "from 0 to 1", "message": "what it is doing"},
    ),
    "node.token": (
        "Part of a streaming LLM answer (`call_llm_service` with `stream`).",
        {"delta": "the text received since the last one"},
    ),
}

# --------------------------------------------------------------------------- the trellis command

CLI_ENVIRONMENT: dict[str, str] = {
    "TRELLIS_URL": "The server's URL, when neither `--url` nor a profile gives one.",
    "TRELLIS_TOKEN": "The API token, when neither `--token` nor a profile gives one.",
    "TRELLIS_PROFILE": "The saved profile to use, when `--profile` is not given.",
    "XDG_CONFIG_HOME": "Profiles live in `$XDG_CONFIG_HOME/trellis/config.json` (default "
    "`~/.config`), mode 0600.",
}

# Exit statuses by the constant the command returns (or the number itself).
CLI_EXIT_STATUSES: dict[str, str] = {
    "OK": "Success (a followed run COMPLETED).",
    "RUN_FAILED": "A followed run FAILED or was CANCELLED, or `workflow validate` found problems.",
    "ERROR": "Usage, configuration, authentication, network or API errors, with the API's "
    "sentence on stderr.",
    "130": "Interrupted (Ctrl-C).",
}

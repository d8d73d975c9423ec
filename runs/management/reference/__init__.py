"""The reference pages under ``docs/reference/``, generated from the code.

``manage.py docs_reference`` writes them (:mod:`.pages`); ``--check`` compares them with what
the code says now, so a page cannot drift from its source:

- ``spec.md``: the checker's keys, limits and defaults (:mod:`runs.rules.spec.model`), the
  types of the API's spec schema, the trigger rules as :func:`runs.rules.decisions.decide`
  documents them, and the knobs nodes fall back to (:mod:`.engine`);
- ``handlers.md``: each registered handler's ``description`` and ``config_schema``
  (:mod:`.engine`);
- ``events.md``: the event kinds recorded in ``runs/`` and ``handlers/``, found by parsing
  them (:mod:`.engine`);
- ``settings.md``: :data:`runs.rules.config.KNOBS`, and every environment variable
  ``orchestration/settings.py`` reads, found by parsing it (:mod:`.configuration`);
- ``cli.md``: the ``trellis`` command's argparse parser (:mod:`.configuration`);
- ``api.md`` and ``seed-004.md``: the OpenAPI document, built in-process the way
  ``/api/schema/`` builds it, and the seed state tables of :mod:`runs.rules.seed`
  (:mod:`.api`).

Meanings the code does not hold come from :mod:`.text`; something in the code that it does
not describe raises :class:`~.markdown.ReferenceGap` rather than leaving a hole in a page.
Output is deterministic: the code's order where it means something, sorted elsewhere.
"""

"""The connectivity test's parts; its public entry points are in
:mod:`agentops.helpers.debug_session`.

- :mod:`.records`: what one step found (:class:`~.records.StepResult`), as data.
- :mod:`.probe`: one deadline, and the reachability of one endpoint (DNS, TCP, TLS, HTTP).
- :mod:`.steps`: the shared context, and one small function per step up to the token.
- :mod:`.span_export`: the last step, a test span through an exporter of its own.
- :mod:`.table`: ``STEPS``, the ordered table that says which step needs what; the runner
  that walks it, and the findings on what the steps found.
- :mod:`.render`: the result as text for a terminal, or as JSON.
"""

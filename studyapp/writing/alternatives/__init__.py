"""Alternative replies on the writing page: side-by-side pairs and regenerations.

Both give the same context more than one assistant reply; the replies share an
``alternative_group`` and only the one the conversation continues with is active (see
``Message`` and docs/datasets.md, where they become dpo pairs). ``services`` and ``selectors``
hold the database side, ``relay`` streams the generations (beside ``studyapp.writing.relay``)
and ``handlers`` adds the ``choose`` and ``regenerate`` frames to the writing socket.
"""

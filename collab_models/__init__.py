"""Model backends for CollabStudy: a plain library with no Django import.

The web app talks to models only through :func:`collab_models.arms.build_arm` and the
:class:`collab_models.base.ReplyStream` it returns.
"""

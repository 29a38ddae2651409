"""The real-time path: how a reply's frames get from a model to the participant's sockets.

How a frame travels:

1. A generation (:mod:`.generations`, begun by the writing app's relay,
   studyapp/writing/relay.py) streams deltas from the model and coalesces them into frames.
   Beginning it marks it in flight in the frame store and returns its lease
   (:class:`.framebus.Lease`): the one writer of its frames and of its end. A lease whose
   generation was claimed as lost, or replaced by a newer one, is refused.
2. The frame store (:mod:`.framestore`, Redis scripts over :mod:`.scriptpipe`) numbers every
   frame of a participation, a lease's and anyone else's, with one counter, and keeps them:
   it is the replay buffer. The script that stores a batch also publishes it; a frame reaches
   a socket only once it is stored.
3. The frame bus (:mod:`.framebus`) hands each frame to the sockets of this process directly,
   and to the sockets of other processes over Redis pub/sub (one channel per process).
4. A socket sends each ``seq`` once, in order; a gap, or a reconnect (perhaps to another
   process), is filled from the store (``generations.resume_plan``).
5. After a Redis restart the store starts a new epoch, numbered from 1: sockets resync from it
   (a generation that streams across the restart goes on in its own epoch).
6. A generation whose process died is claimed by one process, which ends it in the store
   (``framebus.end_lost``; the writing app's sweep, studyapp/writing/lost.py).

The database calls of the chat run off the event loop (:mod:`.dbcalls`: worker processes of
:mod:`.dbprocesses`/:mod:`.dbworker`, or threads), are retried while the database is away
(:mod:`.dbretry`), and the hottest statements skip the ORM's per-query work (:mod:`.fastsql`).
Redis being away (a restart) is an expected condition: each component that meets it says so in
one warning per outage (:mod:`.outage`), not a traceback per call. The ASGI lifespan
(:mod:`.lifespan`) starts and stops that machinery.

The face the study apps call:

- ``generations.generation_launch(key, marker, start, run)``: start a reply as its own task
  (``run(lease, stop_event)`` decides what its end stores); ``call_open(config,
  history)``: start the model call early, before the turn is confirmed;
  ``generation_stop(key)``, ``generation_marker(key)`` (in flight?), ``generation_end``,
  ``generations_drain(limit_s)``; ``resume_plan(...)``: what a reconnecting socket is sent.
- ``framebus.begin(key, marker, frame)`` returns the lease: ``lease.append(frames)``,
  ``lease.end(frames)``; ``framebus.publish(key, frames)``: a frame of no generation;
  ``framebus.stoppable(id)`` / ``stop(origin, id)``: stop a generation anywhere.
- ``framebus.watch(key, sink)`` / ``unwatch(key, sink)`` and
  ``framestore.frame_store().snapshot(key)`` / ``frames_after(key, seq)``: resume a socket.
- ``dbcalls.in_db_worker(fn)`` and ``dbretry.db_retry(...)``: a database call off the loop.
- ``eagerstart.start_now(coroutine, name)``: start a reply before the socket's handler returns.
- ``lifespan.on_startup(hook)`` / ``on_shutdown(hook)``: an app's work for the server's life.

This package imports none of the study apps (tests/test_import_layers.py). Its modules are not
re-exported here, so that a database worker process imports only what it runs.
"""

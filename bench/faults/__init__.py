"""The fault campaign (``python -m bench.faults``): the app's servers killed, stopped and
restarted, sockets cut and hostile frames sent while scripted participants write, and every
frame they saw checked against the database. See bench/README.md, "Fault campaign"."""

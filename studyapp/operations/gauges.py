"""What only a process knows, counted where it happens (the chat's socket); each process is
scraped on its own. Nothing of the project is imported here, so any layer may count."""

from prometheus_client import Counter, Gauge

SOCKETS_OPEN = Gauge("collabstudy_sockets_open", "Participant sockets open on this process.")
REPLIES_IN_FLIGHT = Gauge(
    "collabstudy_replies_in_flight", "Replies this process is streaming from a model."
)
FRAMES_REPLAYED = Counter(
    "collabstudy_frames_replayed", "Frames sent again to a socket that reconnected or resynced."
)

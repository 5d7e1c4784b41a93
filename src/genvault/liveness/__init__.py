"""Liveness and checkpoints, one per process (the engine composes them).

- `Liveness` keeps this process's row in `processes` alive (one heartbeat per process, not a
  lease per generation), writes every dirty generation's partial output in one statement per
  checkpoint interval, and sweeps: it declares dead the processes that stopped heartbeating and
  marks their generations `interrupted`, never this process's own. It works on a small pool of
  its own, so checkpoints and heartbeats never wait behind new turns for a connection.
- `TurnGate` bounds how many new turns hold database connections at once; a turn that cannot get
  in within the wait gets `Busy` (HTTP 503 with Retry-After), and the rest of the pool stays free
  for the streams already running.
"""

from genvault.liveness.gate import TurnGate
from genvault.liveness.heartbeat import Liveness, Tracked

__all__ = ["Liveness", "Tracked", "TurnGate"]

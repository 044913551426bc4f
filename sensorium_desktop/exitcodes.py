"""Exit codes of every ``sensorium`` command (documented in README and docs/cli.md).

0 only when the command did everything it was asked; a partial result is never 0.
"""

from __future__ import annotations

#: Everything asked was done.
OK = 0
#: Nothing useful was done (no Redis, no device opened, nothing recorded, a missing folder).
FAILED = 1
#: The command line names something that does not exist or cannot work (unknown transport,
#: bad device URI, unknown format); nothing was started.
USAGE = 2
#: Done in part: a recording or export with losses, a requested device that never opened or a
#: requested sensor that delivered nothing. What is missing is printed on stderr.
PARTIAL = 3
#: A sync check measured a sensor outside the lab's tolerance, or one that saw no flash.
OUT_OF_TOLERANCE = 4

"""The exit codes of every command and of the worker: one table, BSD's sysexits where one fits.

A tier-1 module (it imports nothing of the connector), so that the worker's window runner
(connector/stream/pipeline.py) and the command line (connector/cli.py, connector/failures.py)
name the same codes; docs/errors.md lists what each means to a user, and a test holds that no
other module of connector/ spells an exit code as a number.
"""

from __future__ import annotations

__all__ = ["EX_CANTCREAT", "EX_CONFIG", "EX_DATAERR", "EX_INCOMPLETE", "EX_INTERRUPTED", "EX_IOERR", "EX_NOINPUT",
           "EX_OK", "EX_SOFTWARE", "EX_UNAVAILABLE", "EX_USAGE"]

EX_OK = 0  # done; the worker after SIGTERM
EX_INCOMPLETE = 1  # the command ran, but what it checks does not hold: verify differs, audit incomplete, ...
EX_USAGE = 64  # a command, option or argument the command line does not take
EX_DATAERR = 65  # the input is there but wrong (a dump that is not JSON, an event that is not valid)
EX_NOINPUT = 66  # an input file, collection or topic that does not exist
EX_UNAVAILABLE = 69  # the Kafka broker or the Qdrant server cannot be reached
EX_SOFTWARE = 70  # anything unexpected: a bug (the worker: a window or an agent failed)
EX_CANTCREAT = 73  # an output file or folder that cannot be created where it was asked
EX_IOERR = 74  # a file that cannot be read or written (the worker: local mode cannot write its storage)
EX_CONFIG = 78  # a setting that is not valid or names something unusable
EX_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as a shell reports it): a bulk tool stops after its last page

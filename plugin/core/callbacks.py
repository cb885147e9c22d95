"""The callbacks every long engine operation takes, so the dialog's tasks and Processing can follow
and stop it: defined once here.

* ``Progress(fraction)``: called with 0..1 as the work advances; it may raise ``Cancelled``, which
  stops the operation before its next write (what was written is removed or never renamed into place).
* ``CheckCancel()``: called between steps that report no fraction; raises ``Cancelled`` to stop.
* ``Log(message)``: one line for the user (the task's log, the Processing log), in plain words.

Operations take them as optional keyword arguments (``Optional[Progress] = None``: nothing reported).
"""

from typing import Callable, Tuple

from .errors import Cancelled

Progress = Callable[[float], None]
CheckCancel = Callable[[], None]
Log = Callable[[str], None]


def reporting_to(is_canceled: Callable[[], bool], set_percent: Callable[[float], None]) -> Tuple[Progress, CheckCancel]:
    """(progress, check_cancel) that report to a host's progress bar (0-100) and raise ``Cancelled`` once
    the host's cancel flag is set: a QgsTask's ``isCanceled``/``setProgress``, or a Processing feedback's."""

    def check_cancel() -> None:
        if is_canceled():
            raise Cancelled("cancelled by the user")

    def progress(fraction: float) -> None:
        check_cancel()
        set_percent(max(0.0, min(100.0, 100.0 * fraction)))

    return progress, check_cancel

"""The callbacks every long engine operation takes, so the dialog's tasks and Processing can follow
and stop it: defined once here.

* ``Progress(fraction)``: called with 0..1 as the work advances; it may raise ``Cancelled``, which
  stops the operation before its next write (what was written is removed or never renamed into place).
* ``CheckCancel()``: called between steps that report no fraction; raises ``Cancelled`` to stop.
* ``Log(message)``: one line for the user (the task's log, the Processing log), in plain words.

Operations take them as optional keyword arguments (``Optional[Progress] = None``: nothing reported).
"""

from typing import Callable

Progress = Callable[[float], None]
CheckCancel = Callable[[], None]
Log = Callable[[str], None]

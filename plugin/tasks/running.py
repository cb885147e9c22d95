"""The tasks a dialog or the plugin started and that are still running.

QGIS's task manager owns the C++ task, but a Python subclass whose last Python reference goes away is
collected while it runs (its signals then reach nothing): whoever starts a task keeps it here until
QGIS says it ended. Also what the tests wait on ("nothing of ours is running")."""

from qgis.core import QgsApplication


class RunningTasks:
    def __init__(self):
        self._tasks = []

    def start(self, task):
        """Keep ``task`` until it completes or is terminated, and hand it to QGIS's task manager."""
        self._tasks.append(task)
        task.taskCompleted.connect(lambda t=task: self._forget(t))
        task.taskTerminated.connect(lambda t=task: self._forget(t))
        QgsApplication.taskManager().addTask(task)
        return task

    def _forget(self, task):
        if task in self._tasks:
            self._tasks.remove(task)

    def __len__(self):
        return len(self._tasks)

    def __iter__(self):
        return iter(list(self._tasks))

"""Progress callbacks for the engine that report to a QgsTask or a Processing feedback and raise on cancel."""

from ..core.errors import Cancelled


def task_progress(task):
    """(progress(fraction), check_cancel()) for a QgsTask."""

    def check_cancel() -> None:
        if task.isCanceled():
            raise Cancelled("cancelled by the user")

    def progress(fraction: float) -> None:
        check_cancel()
        task.setProgress(max(0.0, min(100.0, 100.0 * fraction)))

    return progress, check_cancel


def feedback_progress(feedback):
    """(progress(fraction), check_cancel()) for a QgsProcessingFeedback (which may be None)."""

    def check_cancel() -> None:
        if feedback is not None and feedback.isCanceled():
            raise Cancelled("cancelled by the user")

    def progress(fraction: float) -> None:
        check_cancel()
        if feedback is not None:
            feedback.setProgress(max(0.0, min(100.0, 100.0 * fraction)))

    return progress, check_cancel

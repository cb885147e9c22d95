"""How the dialog talks to the user: message-bar texts, error lines, and the two rules every message follows.

Engine messages start in lower case (they are also quoted inside other messages); shown on their own they
start with a capital. A text that starts with the plugin's name gets no title in the message bar, so it
never reads "Canopy Explorer: Canopy Explorer cannot...".
"""

import re

from qgis.core import Qgis

TITLE = "Canopy Explorer"
LOG_TAG = "Canopy Explorer"
ERROR_STYLE = "<span style='color:#b00020'>{}</span>"
FOLLOW_IN_TASK_MANAGER = " (see the task manager to follow or cancel it)"

_LEADING_WORD = re.compile(r"[a-z]+(?=[\s,;:(]|$)")


def sentence(text: str) -> str:
    """``text`` with a capital first letter, unless it starts with a name (a path, a variable such as h_canopy)."""
    text = text.strip()
    if _LEADING_WORD.match(text):
        return text[0].upper() + text[1:]
    return text


def escape(text: str) -> str:
    """``text`` safe to show in a rich-text label."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def error_line(text: str) -> str:
    """An error as a label shows it: a sentence, escaped, in red."""
    return ERROR_STYLE.format(escape(sentence(text)))


def push_message(message_bar, text: str, level=Qgis.MessageLevel.Info, duration: int = 8) -> None:
    text = sentence(text)
    title = "" if text.startswith(TITLE) else TITLE
    message_bar.pushMessage(title, text, level=level, duration=duration)

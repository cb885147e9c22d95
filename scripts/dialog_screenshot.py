#!/usr/bin/env python3
"""Render the query dialog, filled in as in the README's walkthrough, to docs/img/query_dialog.png."""

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parent.parent


def main(target: str = str(ROOT / "docs" / "img" / "query_dialog.png")) -> int:
    import tempfile

    os.environ.setdefault("QGIS_CUSTOM_CONFIG_PATH", tempfile.mkdtemp(prefix="canopy-screenshot-"))
    from qgis.core import QgsApplication
    from qgis.gui import QgsMapCanvas
    from qgis.PyQt.QtCore import QDate

    app = QgsApplication([], True)
    app.initQgis()
    from canopy_explorer.plugin.core.presets import GOOD_CANOPY
    from canopy_explorer.plugin.gui.query_dialog import QueryDialog

    class Interface:  # the dialog needs only the canvas and the message bar
        canvas = QgsMapCanvas()

        def mapCanvas(self):  # noqa: N802
            return self.canvas

        def mainWindow(self):  # noqa: N802
            return None

    dialog = QueryDialog(Interface())
    dialog.databaseCombo.setCurrentIndex(1)
    dialog.connectionLabel.setText("90 variables, segments from 2019-01-02 to 2023-12-30.")
    dialog.set_variables(["h_canopy", "canopy_h_metrics:95", "h_te_best_fit"])
    dialog.startDateEdit.setDate(QDate(2019, 1, 1))
    dialog.endDateEdit.setDate(QDate(2023, 12, 31))
    dialog.roiLabel.setText("Region: drawn on the map, lon 9.5500 to 10.3500, lat 50.6000 to 51.4000.")
    dialog.filtersEdit.setPlainText(GOOD_CANOPY + "\nnight_flag == 1")
    dialog.resize(680, 700)
    images = []
    for tab in (dialog.variablesTab, dialog.filtersTab):
        dialog.tabs.setCurrentWidget(tab)
        dialog.show()
        app.processEvents()
        images.append(dialog.grab().toImage())
    from qgis.PyQt.QtGui import QImage, QPainter

    combined = QImage(sum(i.width() for i in images) + 20, max(i.height() for i in images), QImage.Format.Format_ARGB32)
    combined.fill(0)
    painter = QPainter(combined)
    x = 0
    for image in images:
        painter.drawImage(x, 0, image)
        x += image.width() + 20
    painter.end()
    partial = target + ".partial.png"
    combined.save(partial)
    os.replace(partial, target)
    print(f"wrote {target}")
    dialog.close()
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

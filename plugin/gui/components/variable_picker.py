"""The ATL08 variables a workflow reads: a searchable tree by category, a label for profile and 20 m
variables (``canopy_h_metrics:95``), in the order the user ticked them (the first names the layer)."""

from typing import Dict, List

from qgis.PyQt import uic
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import QTreeWidgetItem, QWidget

from ...core.lidar.atl08.catalogue import catalogue
from ...core.lidar.variables import SCALAR
from ...resources import ui_path
from ..settings import ExplorerSettings

FORM_CLASS, _ = uic.loadUiType(ui_path("variable_picker.ui"))

ALL_LABELS = "All labels"


class VariablePicker(QWidget, FORM_CLASS):
    """``changed``: the selection (or a label) changed."""

    changed = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setupUi(self)
        self.label_choice: Dict[str, str] = {}
        self.checked_order: List[str] = []
        self._build_tree()
        self.variableSearchEdit.textChanged.connect(self._filter_tree)
        self.variablesTree.itemChanged.connect(self._ticked)
        self.variablesTree.currentItemChanged.connect(self._show_labels_of)
        self.labelCombo.currentIndexChanged.connect(self._label_chosen)
        self._selection_changed()

    def selected_variables(self) -> List[str]:
        chosen = []
        for name in self.checked_order:
            label = self.label_choice.get(name, ALL_LABELS)
            chosen.append(name if label == ALL_LABELS else f"{name}:{label}")
        return chosen

    def set_variables(self, variables) -> None:
        """Check the given variables (``name`` or ``name:label``) and nothing else."""
        wanted = {}
        for text in variables:
            name, _, label = text.partition(":")
            wanted[name.strip()] = label.strip() or ALL_LABELS
        self.variablesTree.blockSignals(True)
        for item in self.variable_items():
            name = item.data(0, Qt.ItemDataRole.UserRole)
            item.setCheckState(0, Qt.CheckState.Checked if name in wanted else Qt.CheckState.Unchecked)
            if name in wanted and catalogue()[name].kind != SCALAR:
                self.label_choice[name] = wanted[name]
        self.variablesTree.blockSignals(False)
        self.checked_order = [name for name in wanted if name in catalogue()]
        self._selection_changed()

    def restore_settings(self, settings: ExplorerSettings) -> None:
        self.set_variables(settings.variables)

    def store_settings(self, settings: ExplorerSettings) -> None:
        settings.variables = tuple(self.selected_variables())

    def variable_items(self):
        for g in range(self.variablesTree.topLevelItemCount()):
            group = self.variablesTree.topLevelItem(g)
            for i in range(group.childCount()):
                yield group.child(i)

    def _build_tree(self):
        self.variablesTree.blockSignals(True)
        groups: Dict[str, QTreeWidgetItem] = {}
        for variable in sorted(catalogue().values(), key=lambda v: (v.category, v.name)):
            if variable.is_orbit_info or variable.category in ("Reference",):
                continue
            group = groups.get(variable.category)
            if group is None:
                group = groups[variable.category] = QTreeWidgetItem(self.variablesTree, [variable.category])
                group.setFlags(group.flags() & ~Qt.ItemFlag.ItemIsUserCheckable)
            item = QTreeWidgetItem(group, [variable.name])
            item.setData(0, Qt.ItemDataRole.UserRole, variable.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(0, Qt.CheckState.Unchecked)
            units = "" if variable.units in ("adimensional", "") else f" [{variable.units}]"
            item.setToolTip(0, f"{variable.description}{units}")
        self.variablesTree.sortItems(0, Qt.SortOrder.AscendingOrder)
        self.variablesTree.expandAll()
        self.variablesTree.blockSignals(False)

    def _filter_tree(self, text: str):
        needle = text.strip().lower()
        for g in range(self.variablesTree.topLevelItemCount()):
            group = self.variablesTree.topLevelItem(g)
            visible = 0
            for i in range(group.childCount()):
                item = group.child(i)
                match = not needle or needle in item.text(0).lower() or needle in item.toolTip(0).lower()
                item.setHidden(not match)
                visible += match
            group.setHidden(visible == 0)

    def _show_labels_of(self, item, _previous=None):
        name = item.data(0, Qt.ItemDataRole.UserRole) if item else None
        variable = catalogue().get(name) if name else None
        self.labelCombo.blockSignals(True)
        self.labelCombo.clear()
        if variable is not None and variable.labels:
            self.labelCombo.addItem(ALL_LABELS)
            self.labelCombo.addItems([str(label) for label in variable.labels])
            self.labelCombo.setCurrentText(self.label_choice.get(name, ALL_LABELS))
        self.labelCombo.setEnabled(self.labelCombo.count() > 0)
        self.labelCombo.blockSignals(False)

    def _label_chosen(self):
        item = self.variablesTree.currentItem()
        name = item.data(0, Qt.ItemDataRole.UserRole) if item else None
        if name:
            self.label_choice[name] = self.labelCombo.currentText()
            self._selection_changed()

    def _ticked(self, item, _column=0):
        name = item.data(0, Qt.ItemDataRole.UserRole)
        if not name:
            return
        ticked = item.checkState(0) == Qt.CheckState.Checked
        if ticked and name not in self.checked_order:
            self.checked_order.append(name)
        elif not ticked and name in self.checked_order:
            self.checked_order.remove(name)
        self._selection_changed()

    def _selection_changed(self):
        self.selectedVariablesLabel.setText("Selected: " + (", ".join(self.selected_variables()) or "none"))
        self.changed.emit()

"""The Python environment the plugin runs in: what it needs, what is wrong with what is there, and
how to install what is missing without breaking the packages QGIS's own Python already has.

QGIS must load the plugin even when packages are missing, so nothing here imports them at
module level; every probe imports one package and reports what happened.
"""

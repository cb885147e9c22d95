"""The STAC catalogue a user searches, as one setting: the built-in Earth Search, a STAC connection saved in QGIS
(Data Source Manager, QGIS 3.40 and newer: its URL and its authentication), or a URL typed in. The NDVI panel and
the Processing algorithm build their engine ``StacSource`` here, so a private catalogue works the same in both.

A saved connection's credentials (its QGIS authentication configuration, or the user name, password and HTTP
headers QGIS keeps with it) become HTTP headers when the source is built, in the main thread or Processing's, and
go nowhere but into that source: settings keep the connection's name only, and messages name the configuration's
id, never what it holds.
"""

import base64
from dataclasses import dataclass
from typing import Dict, List, Tuple

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QUrl
from qgis.PyQt.QtNetwork import QNetworkRequest

from .core.errors import ConfigurationError
from .core.sentinel2.stac_search import StacSource, default_stac_source
from .qgis_compat import HAS_STAC_CONNECTIONS, stac_connection_names, stac_connection_values


def saved_connections() -> List[str]:
    """The names of the STAC connections saved in QGIS (none before QGIS 3.40)."""
    return stac_connection_names() if HAS_STAC_CONNECTIONS else []


@dataclass(frozen=True)
class StacCatalogue:
    """``connection``: the name of a STAC connection saved in QGIS (its URL and authentication are used).
    ``url``: a STAC API's URL when no connection is named; both empty: the built-in default (Earth Search)."""

    connection: str = ""
    url: str = ""

    def source(self, collection: str = "", connection_name: str = "the STAC connection") -> StacSource:
        """The engine's source for this catalogue and ``collection`` (empty: the default collection).
        ``connection_name`` is what messages call the connection setting (Processing names its parameter)."""
        defaults = default_stac_source()
        collection = collection.strip() or defaults.collection
        connection = self.connection.strip()
        if connection:
            url, headers = connection_endpoint(connection, connection_name)
            return defaults.with_changes(url=url, collection=collection, headers=headers)
        return defaults.with_changes(url=self.url.strip() or defaults.url, collection=collection)


def connection_url(connection: str) -> str:
    """A saved connection's URL as QGIS keeps it (nothing of its authentication); empty when there is none."""
    values = stac_connection_values(connection) if HAS_STAC_CONNECTIONS else {}
    return str(values.get("url") or "").strip()


def connection_endpoint(connection: str, connection_name: str = "the STAC connection") -> Tuple[str, Dict[str, str]]:
    """A saved connection's URL and the HTTP headers its requests carry (authentication included)."""
    values = stac_connection_values(connection) if HAS_STAC_CONNECTIONS else {}
    if not values:
        if not HAS_STAC_CONNECTIONS:
            raise ConfigurationError(f"{connection_name} ({connection}) names a STAC connection saved in QGIS, which this "
                                     "QGIS does not have (they came with QGIS 3.40): give the STAC API's URL instead")
        known = ", ".join(saved_connections()) or "none"
        raise ConfigurationError(f"{connection_name} ({connection}) is not a STAC connection saved in QGIS "
                                 f"(saved: {known}): add it in the Data Source Manager or choose another")
    url = str(values.get("url") or "").strip()
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"the STAC connection {connection} has no http(s) URL ({url or 'empty'}): "
                                 "correct it in the Data Source Manager")
    return url, _request_headers(connection, url, values)


def _request_headers(connection: str, url: str, values) -> Dict[str, str]:
    """The headers QGIS itself would send to ``url`` for this connection: its own headers, HTTP Basic from its
    user name and password, then whatever its authentication configuration adds."""
    request = QNetworkRequest(QUrl(url))
    saved = values.get("http-header") or {}
    if saved:
        from qgis.core import QgsHttpHeaders  # QGIS 3.24 and newer, as every QGIS with STAC connections

        QgsHttpHeaders(dict(saved)).updateNetworkRequest(request)
    username, password = str(values.get("username") or ""), str(values.get("password") or "")
    if username or password:
        token = base64.b64encode(f"{username}:{password}".encode("utf-8")).decode("ascii")
        request.setRawHeader(b"Authorization", f"Basic {token}".encode("ascii"))
    authcfg = str(values.get("authcfg") or "").strip()
    if authcfg:
        request = _authenticated(request, connection, authcfg)
    return _headers_of(request)


def _headers_of(request: QNetworkRequest) -> Dict[str, str]:
    return {bytes(key).decode("latin-1"): bytes(request.rawHeader(key)).decode("latin-1") for key in request.rawHeaderList()}


def _authenticated(request: QNetworkRequest, connection: str, authcfg: str) -> QNetworkRequest:
    manager = QgsApplication.authManager()
    if authcfg not in manager.configIds():
        raise ConfigurationError(f"the STAC connection {connection} uses the authentication configuration {authcfg}, "
                                 "which is not in QGIS's authentication database: choose another in the Data Source Manager")
    before = _headers_of(request)
    updated = manager.updateNetworkRequest(request, authcfg)
    ok, request = updated if isinstance(updated, tuple) else (updated, request)  # PyQGIS returns (ok, request) where
    # the C++ argument is in/out, a bare bool otherwise, by release
    if not ok:
        raise ConfigurationError(f"QGIS could not apply the authentication configuration {authcfg} of the STAC connection "
                                 f"{connection} (is the authentication database unlocked with its master password?)")
    if _headers_of(request) == before:
        raise ConfigurationError(f"the authentication configuration {authcfg} of the STAC connection {connection} adds no HTTP "
                                 "header (certificate methods such as PKI are not used for the NDVI search): use Basic, "
                                 "API header or OAuth2 authentication")
    return request

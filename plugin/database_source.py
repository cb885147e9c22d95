"""The database a user reads, as one setting: a source (configuration file, database folder or s3://
URI), an S3 endpoint and a QGIS authentication configuration. The dialog and every Processing algorithm
build their engine configuration here, so a private or non-AWS bucket works the same in both.

The access keys are read from QGIS's authentication database when the configuration is built (in the
main thread or Processing's), never stored in settings, projects or logs: only the configuration's id is.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict

from qgis.core import QgsApplication, QgsAuthMethodConfig

from .core.errors import ConfigurationError
from .core.lidar.config import DatabaseConfig, config_from_source
from .core.samples.database import sample_database_config
from .resources import PLUGIN_ROOT

PUBLIC_CONFIG = str(PLUGIN_ROOT / "configs" / "public_atl08_v007.yaml")
SAMPLE_CONFIG = str(PLUGIN_ROOT / "configs" / "sample_local.yaml")  # the copy `make demo` builds in the repository
BUNDLED_SAMPLE_CONFIG = SAMPLE_CONFIG  # where sample_config() looks first (a test points it elsewhere)

# What an S3 server or the network says when the keys are missing or wrong, and when the server is not there.
_REFUSED = re.compile(r"Response Code: 403|AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch")
_UNREACHABLE = re.compile(r"curlCode: (6|7|28)\b|Could not (connect|resolve)|no answer from .* within")


@dataclass(frozen=True)
class DatabaseSource:
    """``source``: a YAML configuration, a database folder or an s3:// URI (empty: the public database).
    ``endpoint``: the S3 server's URL for an s3:// URI on a server other than AWS. ``authcfg``: the id of
    a QGIS authentication configuration (Basic: user name = access key id, password = secret key) for a
    private bucket. ``config`` takes the names messages give the two (Processing names its parameters)."""

    source: str = ""
    endpoint: str = ""
    authcfg: str = ""

    def config(self, endpoint_name: str = "the S3 endpoint", authcfg_name: str = "the authentication configuration",
               writing: bool = False) -> DatabaseConfig:
        """``writing``: the configuration of a database to write (ingest): the sample configuration is then
        taken as written, not redirected to the user's copy of the sample database."""
        source = self.source.strip() or PUBLIC_CONFIG
        endpoint = self.endpoint.strip()
        if endpoint and not source.startswith("s3://"):
            raise ConfigurationError(f"{endpoint_name} ({endpoint}) applies to an s3:// URI only; {source} sets its own "
                                     f"storage: leave {endpoint_name} empty")
        if source == SAMPLE_CONFIG and not writing:
            config = sample_config()
        else:
            config = config_from_source(source, endpoint=endpoint or None)
        authcfg = self.authcfg.strip()
        if authcfg:
            if config.storage_type != "s3":
                raise ConfigurationError(f"{authcfg_name} ({authcfg}) applies to a database on S3 only; {source} is on this "
                                         f"computer: leave {authcfg_name} empty")
            credentials = s3_credentials(authcfg, authcfg_name)
            config = config.with_changes(s3_settings={**config.s3_settings, **credentials}, anonymous=False)
        return config

    def advice(self, message: str, endpoint_name: str = "the S3 endpoint",
               authcfg_name: str = "the authentication configuration") -> str:
        """What to check when reading or writing this database failed with ``message``: the keys for a
        refused request, the endpoint for a server that did not answer; empty for anything else."""
        endpoint, authcfg = self.endpoint.strip(), self.authcfg.strip()
        if _REFUSED.search(message):
            if authcfg:
                return (f"The S3 server refused the keys of {authcfg_name} ({authcfg}): check that its user name is the access "
                        "key id, its password the secret key, and that they may use this bucket.")
            return (f"The bucket is private (the S3 server refused a request without keys): choose {authcfg_name}, a Basic "
                    "authentication configuration whose user name is the access key id and password the secret key.")
        if _UNREACHABLE.search(message):
            if endpoint:
                return f"No S3 server answered at {endpoint_name} ({endpoint}): check the URL, and that the server runs."
            if self.source.strip().startswith("s3://"):
                return f"The database was looked for on AWS: for another S3 server, give its URL as {endpoint_name}."
        return ""


def s3_credentials(authcfg: str, authcfg_name: str = "the authentication configuration") -> Dict[str, str]:
    """TileDB S3 keys from a QGIS authentication configuration (Basic: user = access key id, password = secret)."""
    manager = QgsApplication.authManager()
    if authcfg not in manager.configIds():
        raise ConfigurationError(f"there is no authentication configuration {authcfg} in this QGIS profile's authentication "
                                 f"database: check {authcfg_name}, or create a Basic configuration with the access key id as "
                                 "user name and the secret key as password")
    config = QgsAuthMethodConfig()
    # QGIS 3.22 answers success with an empty configuration when the master password is not set
    if not manager.loadAuthenticationConfig(authcfg, config, True) or config.id() != authcfg:
        raise ConfigurationError(f"cannot read the authentication configuration {authcfg}: QGIS's master password is not set "
                                 "or is wrong (QGIS asks for it; qgis_process reads it from the file the environment variable "
                                 "QGIS_AUTH_PASSWORD_FILE names)")
    key, secret = config.config("username"), config.config("password")
    if not key or not secret:
        raise ConfigurationError(f"the authentication configuration {authcfg} has no user name or password: edit it so the "
                                 "user name is the access key id and the password the secret key")
    return {"aws_access_key_id": key, "aws_secret_access_key": secret}


def user_sample_folder() -> Path:
    """Where the sample database goes when the plugin folder has none (a plugin installed from its zip):
    the QGIS profile's own folder, which the user can write and which survives plugin updates."""
    return Path(QgsApplication.qgisSettingsDirPath()) / "canopy_explorer" / "sample_data" / "atl08_db"


def sample_config() -> DatabaseConfig:
    """The sample database: the repository's when ``make demo`` built it, otherwise the user's copy
    (which the dialog offers to build)."""
    return sample_database_config(BUNDLED_SAMPLE_CONFIG, user_sample_folder())

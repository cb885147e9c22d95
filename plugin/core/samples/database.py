"""The sample ATL08 database: the demo's synthetic granules ingested into a folder, whole or not at all.

``make demo`` builds it in the repository (``sample_data/atl08_db``, as ``configs/sample_local.yaml``
says); a plugin installed from its zip has no sample data, so the dialog offers to build the same
database in the user's data folder. Both come from the same granules (``SAMPLE_REGION``,
``SAMPLE_SEED``), so the demo's query gives the same segments on either.

    config = sample_database_config("configs/sample_local.yaml", user_folder)
    if not sample_database_exists(config):
        build_sample_database(config, progress=..., check_cancel=...)
"""

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional

from ..callbacks import Progress
from ..errors import CanopyExplorerError, ConfigurationError, OutputError
from ..lidar.config import DatabaseConfig, load_config

SAMPLE_SEED = 42  # generate_granules' default, and the seed of the demo's base map: the same landscape


def sample_database_exists(config: DatabaseConfig) -> bool:
    """True when the sample database's array is on disk (a build only ever leaves a complete one there)."""
    return config.storage_type == "local" and Path(config.array_uri).is_dir()


def sample_database_config(bundled_config, user_folder) -> DatabaseConfig:
    """The sample database ``make demo`` builds (``bundled_config``, normally ``configs/sample_local.yaml``)
    when it exists, otherwise the copy in ``user_folder`` (which may not be built yet)."""
    bundled = load_config(bundled_config)
    if sample_database_exists(bundled):
        return bundled
    return bundled.with_changes(local_path=str(Path(user_folder)), source=f"{bundled.source} (in {user_folder})")


def build_sample_database(config: DatabaseConfig, progress: Optional[Progress] = None, check_cancel: Optional[Callable[[], None]] = None,
                          log: Callable[[str], None] = lambda message: None):
    """Write the sample granules and ingest them into ``config.local_path``; the IngestReport, or None
    when the database was already there.

    Everything is built in a hidden folder beside the target and renamed into place when complete,
    so a cancelled or failed build (``progress``/``check_cancel`` raising Cancelled, a full disk)
    leaves nothing: not the granules, not a half-ingested array, not the folders it created."""
    from ..lidar.ingest import ingest_granules
    from .granules import generate_granules

    if config.storage_type != "local" or not config.local_path:
        raise ConfigurationError(f"the sample database is built on local disk, not in {config.base_uri}")
    progress = progress or (lambda fraction: None)
    check_cancel = check_cancel or (lambda: None)
    target = Path(config.base_uri)
    if sample_database_exists(config):
        return None
    if target.exists() and any(target.iterdir()):
        raise OutputError(f"{target} exists and is not an ATL08 database: move it away or choose another folder")
    created = _missing_parents(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    except OSError as error:
        _remove_empty(created)
        raise OutputError(f"cannot create the sample database folder {target.parent}: {error.strerror or error}") from None
    try:
        check_cancel()
        log(f"writing the sample ATL08 granules in {staging}")
        granules = generate_granules(staging / "granules", seed=SAMPLE_SEED, progress=lambda f: progress(0.4 * f))
        check_cancel()
        staged = config.with_changes(local_path=str(staging / "database"), overwrite=False)
        report = ingest_granules(staged, granules, progress=lambda f: progress(0.4 + 0.55 * f), executor="thread", log=log)
        check_cancel()
        shutil.rmtree(staging / "granules")
        if target.exists():
            target.rmdir()  # an empty folder someone made for it: the rename needs the name free
        os.rename(staging / "database", target)  # atomic on one file system: the database appears complete
        staging.rmdir()
        log(f"sample database ready at {target}: {report.summary()}")
        return report
    except CanopyExplorerError:
        _discard(staging, created)
        raise
    except OSError as error:
        _discard(staging, created)
        if sample_database_exists(config):  # another build finished first: use that one
            return None
        raise OutputError(f"cannot build the sample database in {target.parent}: {error.strerror or error}") from None
    except BaseException:
        _discard(staging, created)
        raise


def _missing_parents(path: Path):
    """The folders above ``path`` that do not exist yet, deepest first (to remove them after a failure)."""
    missing = []
    for parent in path.parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


def _remove_empty(folders) -> None:
    for folder in folders:
        try:
            folder.rmdir()  # only when empty
        except OSError:
            break


def _discard(staging: Path, created) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    _remove_empty(created)

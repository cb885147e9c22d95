"""Lidar products: the engine asks the product a database holds for its variables, granule reader,
schema and segment ids (core/lidar/products.py), so a second product is one package plus one line
in the registry. Here a small second product, registered for the test, holds the engine to that."""

import dataclasses
import sys
import types

import numpy as np
import pytest

from canopy_explorer.plugin.core.errors import ConfigurationError, QueryError, UnknownVariableError
from canopy_explorer.plugin.core.lidar import products
from canopy_explorer.plugin.core.lidar.config import DatabaseConfig, config_from_mapping
from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.lidar.filters import parse_filters, to_condition
from canopy_explorer.plugin.core.lidar.query import SegmentQuery, resolve_columns
from canopy_explorer.plugin.core.lidar.variables import SCALAR, Variable

RH98 = Variable("rh98", "BEAM0000/rh98", "float32", SCALAR, 1, "", (), "m", "Canopy", "98th percentile relative height")


@pytest.fixture
def second_product(monkeypatch):
    """A product "toy_l2a" whose catalogue is ATL08's plus rh98, registered like a real one."""
    atl08 = products.product("atl08")
    module = types.ModuleType("toy_l2a_product")
    module.PRODUCT = dataclasses.replace(atl08, name="toy_l2a", title="Toy L2A",
                                         catalogue=lambda: {**atl08.catalogue(), "rh98": RH98})
    monkeypatch.setitem(sys.modules, "toy_l2a_product", module)
    monkeypatch.setitem(products.PRODUCT_PACKAGES, "toy_l2a", "toy_l2a_product")
    return module.PRODUCT


def test_atl08_is_the_default_and_registered_product():
    atl08 = products.product()
    assert atl08.name == "atl08" and atl08.title == "ATL08"
    assert atl08.variable("h_canopy").units == "meters"
    assert DatabaseConfig(local_path="/tmp/db").product == "atl08"


def test_an_unknown_product_is_refused_naming_what_this_version_knows(tmp_path):
    with pytest.raises(ConfigurationError, match=r"unknown lidar product 'gedi_l4a': this version knows atl08"):
        products.product("gedi_l4a")
    document = {"tiledb": {"storage_type": "local", "local_path": str(tmp_path), "product": "gedi_l4a"}}
    with pytest.raises(ConfigurationError, match=r"tiledb.product in test.yaml is 'gedi_l4a': this version stores atl08"):
        config_from_mapping(document, "test.yaml")


def test_a_configuration_names_its_product(second_product, tmp_path):
    document = {"tiledb": {"storage_type": "local", "local_path": str(tmp_path), "product": "toy_l2a"}}
    assert config_from_mapping(document, "test.yaml").product == "toy_l2a"


def test_queries_and_filters_name_the_variables_of_their_product(second_product):
    with pytest.raises(UnknownVariableError, match="unknown variable 'rh98'"):
        resolve_columns(["rh98"])  # not an ATL08 variable
    assert [c.name for c in resolve_columns(["rh98"], "toy_l2a")] == ["rh98"]
    assert to_condition(parse_filters("rh98 >= 5", "toy_l2a")) == "rh98 >= 5"
    with pytest.raises(UnknownVariableError, match="unknown variable 'rh98' in filter"):
        parse_filters("rh98 >= 5")
    spec = SegmentQuery.create(roi=(7.0, 45.0, 7.3, 45.3), variables=["rh98", "h_canopy"], filters="rh98 > 2",
                               product="toy_l2a")
    assert spec.product == "toy_l2a" and [c.name for c in spec.columns] == ["rh98", "h_canopy"]


def test_a_database_answers_only_queries_for_its_own_product(second_product, local_database):
    spec = SegmentQuery.create(roi=(7.0, 45.0, 7.3, 45.3), variables=["h_canopy"], product="toy_l2a")
    database = Atl08Database(local_database)
    with pytest.raises(QueryError, match=r"the query asks for toy_l2a variables, but .* holds ATL08 segments"):
        database.query(spec)
    frame = database.query(dataclasses.replace(spec, product="atl08"))
    assert len(frame) > 0


def test_the_engine_decodes_beams_and_segment_ids_through_the_product(local_database):
    database = Atl08Database(local_database)
    frame = database.query(SegmentQuery.create(roi=(7.0, 45.0, 7.3, 45.3), variables=["h_canopy"]))
    track, cycle, beam, _ = database.product.decode_segment_id(frame["segment_id"].to_numpy())
    assert set(frame["beam_id"]) <= {"gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r"}
    np.testing.assert_array_equal(database.product.beam_names(frame["segment_id"].to_numpy()), frame["beam_id"].to_numpy())
    assert (track >= 1).all() and (cycle >= 1).all() and (beam <= 5).all()

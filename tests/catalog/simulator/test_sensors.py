"""Sensor definitions: the sensor names a signature accepts are the sensors defined."""

from __future__ import annotations

from typing import get_args

import pytest

from orbitcube.catalog.errors import SimulatorError
from orbitcube.catalog.simulator.sensors import SENSORS, SensorName, sensor


def test_sensor_names_are_the_defined_sensors() -> None:
    assert set(get_args(SensorName)) == set(SENSORS)
    for name, spec in SENSORS.items():
        assert sensor(name) is spec and spec.name == name


def test_unknown_sensor_names_the_choices() -> None:
    with pytest.raises(
        SimulatorError, match=r"unknown sensor 'sentinel2'; choose one of \['landsat', 'sentinel-2'\]"
    ):
        sensor("sentinel2")  # type: ignore[arg-type]

"""The dependencies every service function needs, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field

from graphyard.broker.ports import Broker
from graphyard.graphs import GraphRegistry
from graphyard.plugins import Plugins
from graphyard.settings import Settings
from graphyard.storage.ports import Storage


@dataclass(frozen=True, slots=True)
class Services:
    storage: Storage
    broker: Broker
    graphs: GraphRegistry
    settings: Settings
    plugins: Plugins = field(default_factory=Plugins)

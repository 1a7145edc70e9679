"""The bundled demo: a fictional brand's bad afternoon, served over loopback.

`build_world` generates the timeline, `DemoServer` serves it as feeds and a
review site, and `write_demo_config` writes the `watch.yaml` that points
Listener's real sources at that server.
"""

from __future__ import annotations

from listener.demo.config import write_demo_config
from listener.demo.server import DemoServer
from listener.demo.world import World, WorldItem, build_world

__all__ = ["DemoServer", "World", "WorldItem", "build_world", "write_demo_config"]

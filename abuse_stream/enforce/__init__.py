"""Enforcement points: consume the compacted IP-list topic and apply it to a proxy (see ``enforce.nginx``)."""

from __future__ import annotations

from abuse_stream.enforce.nginx import IPLists, NginxEnforcer, enforce_group, render_include, write_include

__all__ = ["IPLists", "NginxEnforcer", "enforce_group", "render_include", "write_include"]

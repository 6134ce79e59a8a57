"""Ingest: raw access-log lines -> canonical records (a polars frame) + rejected lines with reasons."""

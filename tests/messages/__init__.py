"""Tests of genvault.messages, the pure AI SDK v5 data model."""

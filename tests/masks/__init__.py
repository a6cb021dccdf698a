"""Tests of certkit.masks (issue 4 foundation)."""

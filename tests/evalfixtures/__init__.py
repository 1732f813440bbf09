"""Test doubles for the evaluation tests (not a real model server)."""

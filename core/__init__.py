"""Shared basics, the lowest layer: errors, YAML reading and the strict config base, URL secrets handling.

Everything here runs on Python 3.9 (the MindX SDK's Python on Atlas boxes) and imports nothing of this
project. Layers above: models < export and conversion < train, pipeline < bundle < the command line
(`inspector`); the contract in setup.cfg ([importlinter]) is checked by tests/test_import_rules.py.
"""

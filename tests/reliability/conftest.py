"""The reliability tier's hooks and `reliability` fixture live in tests/support/record_plugin.py,
registered by tests/conftest.py so that they also run in pytest-xdist's controller."""

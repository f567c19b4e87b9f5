"""The chat app's widgets: each owns its DEFAULT_CSS, bindings and messages."""

"""Scripts and extensions (layer 3): the public plugin API (`api`), the script runner, callbacks, the
extension manager and the logic of the built-in scripts.  See docs/extensions.md.
"""

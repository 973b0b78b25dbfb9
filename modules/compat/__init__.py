"""A1111 compatibility for extensions (layer 5: the only package that may import every other layer).

A1111 extensions reach the program through module globals (`modules.shared.opts`, `shared.state`,
`shared.sd_model`, `launch.run_pip`, …). This app has no such globals: everything lives in the `AppContext` the
composition root builds. The modules here are **views** over the running app's objects, bound at start-up through
`modules.compat.host` (the registry of running apps); the A1111-named modules (`modules/shared.py`,
`modules/paths.py`, …) are thin re-exports of them. See docs/extensions.md for the supported names.
"""

"""`python -m modules.compat.run_installer <extension>/install.py`: run an extension's installer under the guard.

A1111 runs `install.py` as `python install.py` with `PYTHONPATH=<install>`; installers that call `launch.run_pip`
are checked by `modules.compat.installer.guarded_pip`, but many call pip themselves (sd-dynamic-prompts runs
`subprocess.check_call([sys.executable, "-m", "pip", "install", ...])`). This runner executes the file the same way
(`__main__`, its folder first on `sys.path`, `sys.argv[0]` the file) and afterwards checks the web UI's own
requirements: a package the installer moved to a version the app cannot run with is put back and the run fails
with one line naming the extension and the package (`InstallRefusedError`, exit status 1).
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Sequence
from pathlib import Path

from modules.compat.installer import InstallRefusedError, app_requirements, restore_broken, snapshot


def main(argv: Sequence[str]) -> int:
    """Run `argv[0]` (an install.py) with `argv[1:]` as its arguments; 0 when it and the check passed."""
    if not argv:
        print("usage: python -m modules.compat.run_installer <install.py> [args]", file=sys.stderr)
        return 2
    script = Path(argv[0]).resolve()
    extension = script.parent.name
    needs = app_requirements()
    before = snapshot(needs)
    sys.argv = [str(script), *argv[1:]]
    sys.path.insert(0, str(script.parent))
    status = 0
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        try:
            restore_broken(extension, "its install.py", before, needs)
        except (InstallRefusedError, RuntimeError) as exc:
            print(str(exc), file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

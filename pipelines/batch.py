"""De-block a whole image folder on Ray Data (the same command as ``dcsc-preproc batch``).

    python -m pipelines.batch --source images/ --output clean/ [--address ray://head:10001]

The work is :func:`dcsc_preproc.deblock_folder`: it lives in the package, not here, so that
``dcsc-preproc batch`` works from any install, and so that Ray's workers, which import the
actor class by module, need only the installed package.
"""

from __future__ import annotations

import sys

from dcsc_preproc.cli import main

if __name__ == "__main__":
    main(["batch", *sys.argv[1:]])

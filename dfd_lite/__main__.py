"""``python -m dfd_lite``: the ``dfd-lite`` command line (:mod:`dfd_lite.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":   # importing the module (as the docs build does) runs nothing
    sys.exit(main())

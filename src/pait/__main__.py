import sys

from pait.cli import main

sys.exit(main())

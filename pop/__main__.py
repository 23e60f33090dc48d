import sys

from pop.cli import main

sys.exit(main())

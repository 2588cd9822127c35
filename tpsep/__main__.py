import sys

from tpsep.cli import main

sys.exit(main())

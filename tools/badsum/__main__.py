import sys

from badsum.cli import main

sys.exit(main())

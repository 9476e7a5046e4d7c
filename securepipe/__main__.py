import sys

from securepipe.cli import main

sys.exit(main())

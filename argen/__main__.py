import sys

from argen.cli.app import main

sys.exit(main())

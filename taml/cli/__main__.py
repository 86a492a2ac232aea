import sys

from taml.cli.main import main

sys.exit(main())

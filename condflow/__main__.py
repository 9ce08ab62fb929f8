import sys

from condflow.cli import main

sys.exit(main())

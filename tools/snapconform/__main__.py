import sys

from snapconform.cli import main

sys.exit(main())

import sys

from invite_desk.cli import main

sys.exit(main())

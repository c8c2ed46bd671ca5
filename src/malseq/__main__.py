import sys

from malseq._cli import main

sys.exit(main())

import sys

from scorer.launch import main

sys.exit(main())

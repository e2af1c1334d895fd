"""``python -m ai.vmaf_train``, as the console script."""

import sys

from ai.vmaf_train import main

sys.exit(main())

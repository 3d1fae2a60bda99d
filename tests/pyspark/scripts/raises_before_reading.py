"""Raises before it reads its feed, as a script whose import fails would: nothing ever connects to the feed, which
the JVM task fills until every slot is taken.
"""

import os

raise ImportError(f"rank {os.environ['SPINDLE_RANK']}: No module named 'a_module_with_a_typo'")

"""The default tolerances of every verification: |candidate - reference| <= atol + rtol * |reference|.

Declared once, in a module that imports nothing, so the command line's `--atol`/`--rtol` show
the library's defaults without importing numpy at start-up.
"""

DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-4

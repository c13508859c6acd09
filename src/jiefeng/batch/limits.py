"""The ranges a synthetic portfolio accepts, in a module of their own so the command line can
state them in `--help` without importing the generator."""

MIN_ACCOUNTS = 100  # every scenario gets its accounts
MAX_ACCOUNTS = 200_000
MIN_MONTHS = 17  # the slowest scenario (a second cause in month 13) lifts by month 17
MAX_MONTHS = 36

"""`python -m jiefeng`: the same command line as the `jiefeng` script."""

from jiefeng.cli import main

main()

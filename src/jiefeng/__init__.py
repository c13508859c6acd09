"""jiefeng: decides when a consumer credit line is frozen, lifts the freeze when its condition
clears, and explains why."""

from jiefeng import native as _native

_native.guard()  # compiled hot modules when built and current (`make native`), else Python

"""Template filters for numbers: ``{% load numbers %}`` then ``{{ cost|money }}``,
``{{ score|num }}``, ``{{ latency|ms }}``, ``{{ duration|us }}``, ``{{ rate|percent }}``.

The rules are in :mod:`routing.explorer.numbers`.
"""

from __future__ import annotations

from django import template

from routing.explorer import numbers

register = template.Library()

register.filter("money", numbers.money)
register.filter("num", numbers.number)
register.filter("ms", numbers.milliseconds)
register.filter("us", numbers.duration_us)
register.filter("percent", numbers.percent)

"""Categorisation of statement rows: rules, counterparties and recurring payments.

Pure functions over the domain types, so the API can validate per-org rules with `Rule` and
the job worker can categorise without a database.

Priority: the matching rule with the lowest `priority` wins; ties go to the rule that comes
first in the sequence given. Every default rule has a priority of at least
`DEFAULT_PRIORITY_START` (1000) while a `Rule` defaults to 100, so `org_rules +
DEFAULT_RULES` lets an org's rules beat every default; an org rule given a priority above
1000 slots in between the defaults (e.g. 5000: only when no default rule matched).

- `rules.py`: one rule and the checks that refuse a bad one (including risky regexes);
- `defaults.py`: the rules every org gets; `categories.py`: the names they assign;
- `matching.py`: `categorise`, which finds each row's rule through a word index;
- `counterparties.py`: the payee or payer a description names;
- `recurring.py`: regular payments to or from one counterparty;
- `text.py`: words and shapes (digits zeroed), shared by matching and counterparties.

What other files of the module use is importable from here.
"""

from touchstone.statements.categorise.categories import UNCATEGORISED
from touchstone.statements.categorise.counterparties import extract_counterparty
from touchstone.statements.categorise.defaults import DEFAULT_RULES
from touchstone.statements.categorise.matching import categorise
from touchstone.statements.categorise.recurring import RecurringGroup, find_recurring
from touchstone.statements.categorise.rules import DEFAULT_PRIORITY_START, Rule, compile_pattern

__all__ = [
    "DEFAULT_PRIORITY_START",
    "DEFAULT_RULES",
    "UNCATEGORISED",
    "RecurringGroup",
    "Rule",
    "categorise",
    "compile_pattern",
    "extract_counterparty",
    "find_recurring",
]

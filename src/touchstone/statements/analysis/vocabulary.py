"""The words the analysis reads descriptions by: returned items, charges, lenders.

Data only, one place: a new bank's or country's wording is a line here, not code. Every
entry is a phrase of whole words, compared accent- and case-blind after punctuation is
dropped ("I/W CHQ RTN" reads as the words `i w chq rtn`, "Rücklastschrift" as
`rucklastschrift`). `returns.py` and `income.py` use them.
"""

from __future__ import annotations

RETURNED: dict[str, tuple[str, ...]] = {
    # Said alone, these mean a payment came back unpaid.
    "english": (
        "bounce",
        "bounced",
        "dishonour",
        "dishonoured",
        "dishonor",
        "dishonored",
        "unpaid",
        "insufficient funds",
        "insufficient balance",
        "insufficient bal",
        "insuff bal",
        "insuff funds",
        "funds insufficient",
        "nsf",
        "refer to drawer",
        "returned unpaid",
        "returned item",
        "return item",
        "returned payment",
        "payment returned",
    ),
    "india": (
        "chq ret",
        "chq rtn",
        "i w rtn",
        "o w rtn",
        "iw rtn",
        "ow rtn",
        "inward return",
        "outward return",
        "ecs rtn",
        "nach rtn",
        "ach rtn",
        "mandate rtn",
        "exceeds arrangement",
    ),
    "german": (
        "rucklastschrift",
        "ruecklastschrift",
        "lastschriftruckgabe",
        "lastschriftrueckgabe",
        "ruckgabe lastschrift",
        "rueckgabe lastschrift",
        "mangels deckung",
        "nicht eingelost",
        "nicht eingeloest",
    ),
    "french": (
        "impaye",
        "impayes",
        "rejet prelevement",
        "prelevement rejete",
        "cheque rejete",
        "provision insuffisante",
        "defaut de provision",
    ),
    "spanish": (
        "devolucion recibo",
        "recibo devuelto",
        "cheque devuelto",
        "fondos insuficientes",
        "saldo insuficiente",
        "impagado",
    ),
    "portuguese": (
        "cheque devolvido",
        "devolucao cheque",
        "debito devolvido",
        "sem fundos",
        "insuficiencia de fundos",
    ),
}
"""Phrases that name a returned item on their own."""

RETURN_WORDS: tuple[str, ...] = (
    "return",
    "returned",
    "rtn",
    "ret",
    "reject",
    "rejected",
    "reversal",
    "rejet",
    "retour",
    "devolucion",
    "devolucao",
    "devuelto",
    "devolvido",
    "ruckgabe",
    "rueckgabe",
)
"""Words that mean a return only beside an instrument below: "AMAZON RETURN" is a refund,
"ECS RETURN" a bounce."""

CHEQUES: tuple[str, ...] = (
    "chq",
    "cheque",
    "check",
    "clg",
    "clearing",
    "scheck",
    "cheques",
)
MANDATES: tuple[str, ...] = (
    "ecs",
    "nach",
    "ach",
    "mandate",
    "dd",
    "direct debit",
    "si",
    "standing instruction",
    "emi",
    "lastschrift",
    "prelevement",
    "recibo",
    "domiciliacion",
    "debito automatico",
    "boleto",
)
"""Instruments: a cheque, or a debit the customer mandated (ECS, NACH, ACH, direct debit)."""

INWARD: tuple[str, ...] = ("i w", "iw", "inward", "issued")
"""A payment the customer made (a cheque issued, a mandate) that the bank did not pay."""
OUTWARD: tuple[str, ...] = ("o w", "ow", "outward", "deposited", "deposit")
"""A payment made to the customer (a cheque deposited) that the payer's bank did not pay."""

CHARGES: tuple[str, ...] = (
    "charge",
    "charges",
    "chg",
    "chgs",
    "chrg",
    "chrgs",
    "fee",
    "fees",
    "penalty",
    "penal",
    "gst",
    "igst",
    "cgst",
    "sgst",
    "gebuhr",
    "gebuehr",
    "entgelt",
    "frais",
    "commission",
    "comision",
    "tarifa",
    "taxa",
)
"""What a bank charges with: a return row that also says one of these is the charge."""

LENDERS: tuple[str, ...] = (
    "loan",
    "loans",
    "emi",
    "finance",
    "financial",
    "finserv",
    "fincorp",
    "housing finance",
    "home loan",
    "mortgage",
    "lending",
    "credit",
    "capital",
    "nbfc",
    "kredit",
    "darlehen",
    "pret",
    "prestamo",
    "hipoteca",
    "emprestimo",
    "financiamento",
)
"""Words a recurring debit's description or payee holds when it repays a loan."""

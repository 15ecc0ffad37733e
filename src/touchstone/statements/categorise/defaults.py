"""The rules every org gets, after its own: Indian and UK statement wording.

A default's priority is `DEFAULT_PRIORITY_START` plus its place in `DEFAULT_RULES`, so an
org's rules (priority 100 unless it says otherwise) are tried first.
"""

from __future__ import annotations

from touchstone.statements.categorise.categories import (
    BILL_PAYMENT,
    CARD_PAYMENT,
    CASH_DEPOSIT,
    CASH_WITHDRAWAL,
    CHEQUE,
    CREDIT_CARD_BILL,
    DINING,
    DIVIDEND,
    EDUCATION,
    FEES_CHARGES,
    FUEL,
    GROCERIES,
    HEALTHCARE,
    INSURANCE,
    INTEREST,
    INVESTMENT,
    LOAN_EMI,
    PENSION_BENEFITS,
    REFUND,
    RENT,
    RENTAL_INCOME,
    RETURNED,
    SALARY,
    SHOPPING,
    SUBSCRIPTIONS,
    TAX,
    TRANSFER,
    TRAVEL,
    UTILITIES,
    WALLET,
)
from touchstone.statements.categorise.rules import DEFAULT_PRIORITY_START, Rule
from touchstone.statements.domain import Direction


def _default(
    name: str,
    category: str,
    order: int,
    keywords: str = "",
    *,
    pattern: str | None = None,
    direction: Direction | None = None,
) -> Rule:
    return Rule(
        name=name,
        category=category,
        priority=DEFAULT_PRIORITY_START + order,
        keywords=tuple(k.strip() for k in keywords.split("|") if k.strip()),
        pattern=pattern,
        direction=direction,
    )


_CREDIT, _DEBIT = Direction.CREDIT, Direction.DEBIT

# Order matters: specific signals (a return, a fee, a refund) before the merchant, merchants
# before the payment rail (UPI, NEFT, DD...) that carried them.
DEFAULT_RULES: tuple[Rule, ...] = (
    _default(
        "returned item",
        RETURNED,
        0,
        "RTN|RETURNED|BOUNCE|BOUNCED|DISHONOUR|DISHONOURED|UNPAID|INSUFFICIENT FUNDS|"
        "INSUFFICIENT BALANCE|INSUFF BAL|FUNDS INSUFFICIENT|CHQ RET|CHQ RETURN|CHEQUE RETURN|"
        "CHEQUE RETURNED|ECS RETURN|NACH RETURN|ACH RETURN|DD RETURN|NEFT RETURN|"
        "IMPS RETURN|RETURN CHQ|INWARD RETURN|OUTWARD RETURN|REFER TO DRAWER",
    ),
    _default(
        "education",
        EDUCATION,
        5,
        "SCHOOL|COLLEGE|UNIVERSITY|TUITION|EDUCATION|BYJUS|COURSERA|UDEMY",
        direction=_DEBIT,
    ),
    _default(
        "bank fees and charges",
        FEES_CHARGES,
        10,
        "CHARGE|CHARGES|CHGS|CHG|FEE|FEES|SMS ALERT|AMC|MIN BAL|MINIMUM BALANCE|"
        "NON MAINTENANCE|GST ON|IGST|CGST|SGST|COMMISSION|PENALTY|PENAL|LATE PAYMENT|"
        "UNARRANGED|NON STERLING|FOREIGN TRANSACTION|CASH HANDLING",
        direction=_DEBIT,
    ),
    _default(
        "cash withdrawal",
        CASH_WITHDRAWAL,
        15,
        "ATM|ATW|NWD|NFS|LNK|CASHPOINT|CASH MACHINE|CASH WITHDRAWAL|CASH WDL|ATM WDL|CSH WDL|"
        "CASH W D|ATM WITHDRAWAL",
        direction=_DEBIT,
    ),
    _default(
        "cash deposit",
        CASH_DEPOSIT,
        16,
        "CASH DEPOSIT|CASH DEP|CSH DEP|CDM|BY CASH|CASH CR|CASH PAID IN|PAID IN AT|"
        "COUNTER CREDIT|CASH LODGEMENT",
        direction=_CREDIT,
    ),
    _default(
        "refund",
        REFUND,
        20,
        "REFUND|REFUNDED|REVERSAL|REVERSED|REV|CASHBACK|CHARGEBACK|RETURN|MERCHANT CREDIT",
        direction=_CREDIT,
    ),
    _default("card credit", REFUND, 21, "POS|VIS|VISA|DEBIT CARD", direction=_CREDIT),
    _default(
        "loan repayment",
        LOAN_EMI,
        25,
        "LOAN|EMI|MORTGAGE|FINANCE|FINSERV|BAJAJ FIN|HOME LOAN|CAR LOAN|PERSONAL LOAN|"
        "LOAN REPAYMENT",
        direction=_DEBIT,
    ),
    _default(
        "interest",
        INTEREST,
        30,
        "INTEREST|INT PD|INT CR|INT PAID|INT CREDIT|INT COLL|SB INT|CREDIT INTEREST|DEBIT INTEREST",
    ),
    _default(
        "salary",
        SALARY,
        40,
        "SALARY|SAL|PAYROLL|WAGES|WAGE|STIPEND|SALARY CREDIT",
        direction=_CREDIT,
    ),
    _default(
        "pension and benefits",
        PENSION_BENEFITS,
        45,
        "PENSION|DWP|UNIVERSAL CREDIT|CHILD BENEFIT|TAX CREDIT|TAX CREDITS|HMRC TAX|EPFO",
        direction=_CREDIT,
    ),
    _default("dividend", DIVIDEND, 47, "DIVIDEND|DIVIDENDS", direction=_CREDIT),
    _default("rental income", RENTAL_INCOME, 48, "RENT|RENTAL", direction=_CREDIT),
    _default(
        "rent",
        RENT,
        50,
        "RENT|RENTAL|HOUSE RENT|LANDLORD|LETTINGS|LETTING|TENANCY|NOBROKER",
        direction=_DEBIT,
    ),
    _default(
        "fuel",
        FUEL,
        60,
        "PETROL|DIESEL|FUEL|FILLING STATION|SERVICE STATION|GAS STATION|PETROLEUM|SHELL|ESSO|"
        "TEXACO|HPCL|BPCL|IOCL|INDIAN OIL|BHARAT PETROLEUM|HINDUSTAN PETROLEUM|NAYARA|JIO BP|"
        "CHEVRON|EXXON|MOBIL|VALERO",
        direction=_DEBIT,
    ),
    _default(
        "utilities",
        UTILITIES,
        65,
        "ELECTRICITY|ELECTRIC|POWER|ENERGY|BESCOM|MSEDCL|MSEB|BSES|TATA POWER|TORRENT POWER|"
        "WATER|BRITISH GAS|GAS BILL|INDANE|HP GAS|BHARAT GAS|MAHANAGAR GAS|EDF|E ON|OVO|"
        "OCTOPUS ENERGY|THAMES WATER|SEVERN TRENT|BROADBAND|INTERNET|VIRGIN MEDIA|BT GROUP|"
        "SKY DIGITAL|AIRTEL|JIO|VODAFONE|BSNL|POSTPAID|RECHARGE|DTH|TATA PLAY|BBPS",
        direction=_DEBIT,
    ),
    _default(
        "groceries",
        GROCERIES,
        70,
        "GROCERY|GROCERIES|SUPERMARKET|SUPERMARKETS|TESCO|SAINSBURY|SAINSBURYS|ASDA|MORRISONS|"
        "ALDI|LIDL|WAITROSE|CO OP|OCADO|ICELAND FOODS|BIGBASKET|BIG BASKET|DMART|D MART|"
        "AVENUE SUPERMARTS|RELIANCE FRESH|RELIANCE SMART|SPENCERS|NATURES BASKET|BLINKIT|"
        "ZEPTO|INSTAMART|JIOMART|KROGER|WHOLE FOODS|SAFEWAY|TRADER JOE",
        direction=_DEBIT,
    ),
    _default(
        "dining",
        DINING,
        80,
        "RESTAURANT|CAFE|COFFEE|STARBUCKS|COSTA|PRET|MCDONALDS|KFC|BURGER KING|DOMINOS|"
        "PIZZA|SWIGGY|ZOMATO|DELIVEROO|JUST EAT|UBER EATS|GREGGS|NANDOS",
        direction=_DEBIT,
    ),
    _default(
        "travel",
        TRAVEL,
        90,
        "UBER|OLA|RAPIDO|IRCTC|RAILWAY|RAILWAYS|TRAINLINE|TFL|TRANSPORT FOR LONDON|AIRLINES|"
        "AIRWAYS|INDIGO|AIR INDIA|EASYJET|RYANAIR|MAKEMYTRIP|GOIBIBO|BOOKING COM|AIRBNB|"
        "HOTEL|FASTAG|PARKING",
        direction=_DEBIT,
    ),
    _default(
        "subscriptions",
        SUBSCRIPTIONS,
        100,
        "NETFLIX|SPOTIFY|AMAZON PRIME|PRIME VIDEO|HOTSTAR|DISNEY|YOUTUBE PREMIUM|"
        "APPLE COM BILL|ITUNES|GOOGLE PLAY|MICROSOFT|ADOBE",
        direction=_DEBIT,
    ),
    _default(
        "insurance",
        INSURANCE,
        110,
        "INSURANCE|ASSURANCE|LIC|LIFE INSURANCE|PREMIUM|HDFC LIFE|ICICI PRU|SBI LIFE|"
        "STAR HEALTH|AVIVA|DIRECT LINE|ADMIRAL|LEGAL GENERAL",
    ),
    _default(
        "investment",
        INVESTMENT,
        120,
        "MUTUAL FUND|SIP|ZERODHA|GROWW|UPSTOX|ICCL|INDIAN CLEARING|CAMS|KFINTECH|VANGUARD|"
        "HARGREAVES|ISA|PPF|NPS|FIXED DEPOSIT|FD BOOKED|STOCKS|SHARES",
    ),
    _default(
        "tax",
        TAX,
        130,
        "INCOME TAX|TDS|GST PAYMENT|CBDT|ADVANCE TAX|HMRC|SELF ASSESSMENT|COUNCIL TAX|VAT|"
        "IRS|TAX PAYMENT|CHALLAN",
        direction=_DEBIT,
    ),
    _default(
        "healthcare",
        HEALTHCARE,
        135,
        "PHARMACY|CHEMIST|HOSPITAL|CLINIC|MEDICAL|APOLLO|MEDPLUS|BOOTS|DENTAL|DENTIST|"
        "PHARMEASY|NETMEDS",
        direction=_DEBIT,
    ),
    _default(
        "credit card bill",
        CREDIT_CARD_BILL,
        140,
        "CREDIT CARD|CC PAYMENT|CARD BILL|CRED CLUB|AMEX|AMERICAN EXPRESS|BARCLAYCARD|"
        "CAPITAL ONE|MBNA",
        direction=_DEBIT,
    ),
    _default(
        "wallet top-up",
        WALLET,
        150,
        "WALLET|MOBIKWIK|FREECHARGE|PAYTM ADD MONEY|AMAZON PAY",
        direction=_DEBIT,
    ),
    _default(
        "shopping",
        SHOPPING,
        160,
        "AMAZON|AMZN|PAYPAL|FLIPKART|MYNTRA|AJIO|MEESHO|NYKAA|EBAY|ARGOS|JOHN LEWIS|PRIMARK|IKEA",
        direction=_DEBIT,
    ),
    _default("cash withdrawal code", CASH_WITHDRAWAL, 200, pattern=r"^\s*CPT\b", direction=_DEBIT),
    _default(
        "cheque",
        CHEQUE,
        300,
        "CHQ|CHEQUE|CHEQUES|CLG|INWARD CLG|CLEARING|MICR|CTS|CHECK",
    ),
    _default(
        "direct debit",
        BILL_PAYMENT,
        350,
        "DIRECT DEBIT|DD|OBP|BILL PAYMENT|BILLPAY|BILLDESK|BPAY|ECS|NACH",
        direction=_DEBIT,
    ),
    _default("bill payment code", BILL_PAYMENT, 351, pattern=r"^\s*BP\b", direction=_DEBIT),
    _default(
        "transfer",
        TRANSFER,
        400,
        "NEFT|IMPS|RTGS|UPI|FUND TRANSFER|FUNDS TRANSFER|TRANSFER|TRF|TFR|BACS|FASTER PAYMENT|"
        "FASTER PAYMENTS|FPS|FPI|FPO|BGC|BANK GIRO|STANDING ORDER|STO|ACH|ZELLE|VENMO|WIRE|"
        "SEPA|SWIFT|TPT|INB|INFT|NET BANKING|MOBILE BANKING|OWN ACCOUNT|SELF|MMT",
    ),
    _default("standing order code", TRANSFER, 401, pattern=r"^\s*SO\b"),
    _default(
        "card payment",
        CARD_PAYMENT,
        500,
        "POS|VIS|VISA|VPS|DEB|DEBIT CARD|CARD PAYMENT|CARD PURCHASE|CONTACTLESS|MASTERCARD|"
        "MAESTRO|RUPAY|ECOM|PCD",
        direction=_DEBIT,
    ),
    _default("contactless code", CARD_PAYMENT, 501, pattern=r"^\s*\)\)\)", direction=_DEBIT),
)

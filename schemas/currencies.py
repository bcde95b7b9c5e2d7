"""ISO 4217 currency codes: the codes an amount on the log may carry.

The current list (ISO 4217 list one, as of 2025), the funds and precious-metal codes
(`X..`, `XTS` for testing), and the codes withdrawn since 1970 that old histories
still hold (the euro's predecessors, redenominated currencies). A code outside this
set is a producer's mistake, refused where the event is read; a code inside it that
the policy has no rate for is valid, and counted as an unpriced purchase.
"""

from __future__ import annotations

CURRENT = frozenset(
    """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD
    BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP
    DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS
    INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL
    LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR
    NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP
    SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN
    UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD
    XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG
    """.split()
)

WITHDRAWN = frozenset(
    """
    ANG ATS AZM BEF BYR CSD CUC CYP DEM EEK ESP FIM FRF GHC GRD HRK IEP ITL LTL LUF LVL
    MRO MTL MZM NLG PTE ROL RUR SDD SIT SKK SLL SRG STD TMM TRL VEB VEF YUM ZMK ZWL
    """.split()
)

ISO_4217 = CURRENT | WITHDRAWN


MINOR_DIGITS = {
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    "CLF": 4, "UYW": 4,
}
"""ISO 4217's minor unit of the codes whose is not 2 (cents): how many digits an amount
in minor units has after the decimal point."""


def minor_digits(code: str) -> int:
    return MINOR_DIGITS.get(code, 2)

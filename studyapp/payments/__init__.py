"""Bonus payments: a ledger so that no bonus is ever paid twice."""

"""Gold-loan appraisal: customers, items, the live touchstone purity test, valuation, approval."""

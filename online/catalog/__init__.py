"""The shop catalog: items, the in-process snapshot, filters, rules, diversity and the final list."""

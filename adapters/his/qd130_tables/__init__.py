"""The ``qd130_tables`` adapter: the HIS already exposes the QĐ 130 tables XML1…XML15 as tables or views."""

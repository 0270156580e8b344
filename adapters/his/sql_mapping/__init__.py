"""The ``sql_mapping`` adapter: the hospital writes one SQL query per section of the encounter."""

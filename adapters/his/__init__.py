"""HIS adapters: read completed encounters, read-only, from a hospital's database (port ``EncounterSource``).

One folder per adapter, each with the same files: ``config.py`` (its options, a pydantic model),
``queries.py`` (how it builds its SQL) and ``source.py`` (the ``EncounterSource``). What they share —
safe engine creation, retries, watermark paging, row normalisation, assembly of the canonical encounter —
lives next to this file. ``registry.py`` picks the adapter named in the settings.
"""
